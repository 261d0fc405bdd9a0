"""Publish, promote and rollback against fake-gcs-server with the real google-cloud-storage
client: the same code path production uses with gs://."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artifact_store import GcsStore, open_store
from export import publish
from tests.export.promotion_race import race_two_promotions
from tests.tiny_model import clone_bundle


def test_publish_promote_rollback_on_gcs(
    gcs_bucket: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    store = open_store(f"gs://{gcs_bucket}/fnd")
    assert isinstance(store, GcsStore)
    version = publish.publish(tiny_bundle, store)
    assert publish.list_versions(store) == [version]
    manifest = json.loads(store.read_bytes(f"models/{version}/manifest.json"))
    for name, meta in manifest["files"].items():
        assert len(store.read_bytes(f"models/{version}/{name}")) == meta["bytes"]

    first = publish.promote(store, version)
    assert first["version"] == version and first["previous"] is None

    # A second version (same files under another id) to roll back from.
    second_dir = clone_bundle(tiny_bundle, tmp_path / "b2", "29990101T000000Z-abcdef")
    second = publish.publish(second_dir, store)
    publish.promote(store, second)
    assert publish.read_pointer(store)["version"] == second
    back = publish.rollback(store)
    assert back["version"] == version
    with pytest.raises(LookupError):
        publish.rollback(store)  # nothing older than the first version


def test_two_concurrent_promotions_exactly_one_wins(gcs_bucket: str, tiny_bundle: Path) -> None:
    store = open_store(f"gs://{gcs_bucket}")
    version = publish.publish(tiny_bundle, store)
    publish.promote(store, version)

    assert race_two_promotions(store, version) == ["lost", "won"]
    pointer = publish.read_pointer(store)
    assert pointer["history"] == [version]  # the loser's write left no trace


def test_partial_upload_is_never_a_version(
    gcs_bucket: str, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"gs://{gcs_bucket}")
    uploaded: list[str] = []
    real_upload = store.upload_file

    def flaky_upload(local: Path, key: str) -> None:
        if len(uploaded) == 2:
            raise ConnectionError("network dropped mid-publish")
        real_upload(local, key)
        uploaded.append(key)

    monkeypatch.setattr(store, "upload_file", flaky_upload)
    with pytest.raises(ConnectionError):
        publish.publish(tiny_bundle, store)
    assert len(store.list("models/")) == 2  # files did land...
    assert publish.list_versions(store) == []  # ...but no version is visible
    with pytest.raises(LookupError):
        publish.promote(store, uploaded[0].split("/")[1])
