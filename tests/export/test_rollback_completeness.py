"""Rollback (and promote) switch production only to a complete version: every file its manifest
lists present with the right size and sha256. Otherwise the pointer would name a bundle every
instance refuses to load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from artifact_store import GcsStore, LocalStore, Store, open_store
from export import publish
from tests.conftest import ROOT
from tests.tiny_model import clone_bundle

V2 = "29990101T000000Z-abcdef"


def _v1_then_v2(store: Store, tiny_bundle: Path, tmp: Path) -> str:
    v1 = publish.publish(tiny_bundle, store)
    publish.promote(store, v1)
    publish.publish(clone_bundle(tiny_bundle, tmp / V2, V2), store)
    publish.promote(store, V2)
    return v1


def _flip_last_byte(store: Store, key: str) -> None:
    data = store.read_bytes(key)
    store.write_bytes(key, data[:-1] + bytes([data[-1] ^ 1]))


def test_rollback_to_a_version_with_a_missing_file_fails(tiny_bundle: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    v1 = _v1_then_v2(store, tiny_bundle, tmp_path)
    model = tmp_path / "store" / "models" / v1 / "model.onnx"
    saved = model.read_bytes()
    model.unlink()

    with pytest.raises(publish.IncompleteVersion, match=f"cannot roll back to {v1}.*model.onnx"):
        publish.rollback(store)
    assert publish.read_pointer(store)["version"] == V2  # production untouched

    model.write_bytes(saved)
    assert publish.rollback(store)["version"] == v1


@pytest.mark.parametrize("kind", ["local", "gcs"])
def test_rollback_to_a_corrupt_version_fails(
    kind: str, tiny_bundle: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "gcs":
        store: Store = open_store(f"gs://{request.getfixturevalue('gcs_bucket')}/fnd")
        assert isinstance(store, GcsStore)
    else:
        store = LocalStore(tmp_path / "store")
    v1 = _v1_then_v2(store, tiny_bundle, tmp_path)
    _flip_last_byte(store, f"models/{v1}/tokenizer.json")  # same size, other content

    with pytest.raises(publish.IncompleteVersion, match=r"tokenizer\.json does not match"):
        publish.rollback(store)
    assert publish.read_pointer(store)["version"] == V2


def test_promote_to_an_incomplete_version_fails(tiny_bundle: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    v1 = _v1_then_v2(store, tiny_bundle, tmp_path)
    (tmp_path / "store" / "models" / v1 / "baseline.json").write_text("{}")  # other size
    with pytest.raises(publish.IncompleteVersion, match=r"baseline\.json has"):
        publish.promote(store, v1)
    assert publish.read_pointer(store)["version"] == V2


def test_cli_rollback_refuses_an_incomplete_target(tiny_bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    v1 = _v1_then_v2(LocalStore(root), tiny_bundle, tmp_path)
    (root / "models" / v1 / "model.onnx").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "export", "--store", str(root), "rollback"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "model.onnx is missing" in result.stderr and "Traceback" not in result.stderr
