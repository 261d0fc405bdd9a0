"""Resolving MODEL_URI to a verified bundle: local folder, pointer, gs:// via fake-gcs-server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving_core.bundle import BundleError, fetch_bundle


def _production_version(store: Path) -> str:
    return json.loads((store / "models" / "production.json").read_text())["version"]


def test_local_pointer_resolves_to_the_promoted_bundle(tiny_store: Path, tmp_path: Path) -> None:
    version = _production_version(tiny_store)
    bundle = fetch_bundle(str(tiny_store / "models" / "production.json"), tmp_path / "cache")
    assert bundle.version == version
    assert bundle.directory == tiny_store / "models" / version
    assert (bundle.directory / bundle.manifest["model_file"]).is_file()


def test_local_bundle_folder_and_manifest_path(tiny_bundle: Path, tmp_path: Path) -> None:
    by_folder = fetch_bundle(str(tiny_bundle), tmp_path)
    by_manifest = fetch_bundle(str(tiny_bundle / "manifest.json"), tmp_path)
    assert by_folder.version == by_manifest.version
    assert by_folder.directory == tiny_bundle


def test_corrupt_file_is_refused(store_copy: Path, tmp_path: Path) -> None:
    bundle_dir = store_copy / "models" / _production_version(store_copy)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    model = bundle_dir / manifest["model_file"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content: only the hash can tell
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        fetch_bundle(str(store_copy / "models" / "production.json"), tmp_path)


def test_missing_file_and_missing_manifest_are_refused(store_copy: Path, tmp_path: Path) -> None:
    bundle_dir = store_copy / "models" / _production_version(store_copy)
    (bundle_dir / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="missing"):
        fetch_bundle(str(bundle_dir), tmp_path)
    (bundle_dir / "manifest.json").unlink()
    with pytest.raises(BundleError, match="does not exist"):
        fetch_bundle(str(bundle_dir), tmp_path)


def test_pointer_to_an_absent_version_is_refused(store_copy: Path, tmp_path: Path) -> None:
    pointer = store_copy / "models" / "production.json"
    pointer.write_text(json.dumps({"version": "20990101T000000Z-abcdef"}))
    with pytest.raises(BundleError, match="does not exist"):
        fetch_bundle(str(pointer), tmp_path)
    pointer.write_text(json.dumps({"version": "../../etc"}))
    with pytest.raises(BundleError, match="no valid 'version'"):
        fetch_bundle(str(pointer), tmp_path)


def test_manifest_version_must_match_the_pointer(store_copy: Path, tmp_path: Path) -> None:
    models = store_copy / "models"
    version = _production_version(store_copy)
    (models / version).rename(models / "20990101T000000Z-abcdef")
    (models / "production.json").write_text(json.dumps({"version": "20990101T000000Z-abcdef"}))
    with pytest.raises(BundleError, match="pointer names"):
        fetch_bundle(str(models / "production.json"), tmp_path)


@pytest.mark.slow
def test_gcs_pointer_is_fetched_verified_and_cached(
    fake_gcs, tiny_store: Path, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    fake_gcs.upload_folder(tiny_store / "models", "bucket", "prefix/models")
    version = _production_version(tiny_store)
    cache = tmp_path / "cache"
    bundle = fetch_bundle("gs://bucket/prefix/models/production.json", cache)
    assert bundle.version == version
    assert bundle.directory == cache / version
    for name, meta in bundle.manifest["files"].items():
        assert (cache / version / name).stat().st_size == meta["bytes"]
    # The same URI as a bundle prefix, and a second fetch served from the verified cache copy.
    again = fetch_bundle(f"gs://bucket/prefix/models/{version}", cache)
    assert again.directory == bundle.directory
    assert [p.name for p in cache.iterdir()] == [version]  # no staging folders left behind


@pytest.mark.slow
def test_gcs_corrupt_and_missing_objects_are_refused(
    fake_gcs, tiny_store: Path, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    fake_gcs.upload_folder(tiny_store / "models", "bucket", "models")
    version = _production_version(tiny_store)
    manifest = json.loads((tiny_store / "models" / version / "manifest.json").read_text())
    bucket = fake_gcs.client().bucket("bucket")
    bucket.blob(f"models/{version}/{manifest['tokenizer_file']}").upload_from_string(b"{}")
    with pytest.raises(BundleError, match=r"bytes|sha256"):
        fetch_bundle("gs://bucket/models/production.json", tmp_path / "cache")
    assert not (tmp_path / "cache" / version).exists()  # nothing unverified is left for later use
    with pytest.raises(BundleError, match="does not exist"):
        fetch_bundle("gs://bucket/elsewhere/production.json", tmp_path / "cache")
