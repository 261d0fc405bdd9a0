"""The local artifact store and the `python -m export` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from artifact_store import LocalStore, PreconditionFailed
from export import publish
from tests.conftest import ROOT
from tests.export.promotion_race import race_two_promotions
from tests.tiny_model import clone_bundle


def _export_cli(store: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export", "--store", str(store), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_promote_rollback_commands(tiny_bundle: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    v1 = json.loads((tiny_bundle / "manifest.json").read_text())["version"]
    v2 = "29990101T000000Z-abcdef"
    assert _export_cli(store, "publish", str(tiny_bundle), "--promote").returncode == 0
    clone = clone_bundle(tiny_bundle, tmp_path / "b2", v2)
    assert _export_cli(store, "publish", str(clone)).returncode == 0

    listed = _export_cli(store, "list").stdout.splitlines()
    assert listed == [f"* {v1}", f"  {v2}"]
    assert _export_cli(store, "promote", v2).returncode == 0
    assert json.loads((store / "models/production.json").read_text())["version"] == v2
    assert _export_cli(store, "rollback").returncode == 0
    assert json.loads((store / "models/production.json").read_text())["version"] == v1

    missing = _export_cli(store, "promote", "20000101T000000Z-000000")
    assert missing.returncode == 2
    assert "no complete version" in missing.stderr and "Traceback" not in missing.stderr
    nothing_older = _export_cli(store, "rollback")
    assert nothing_older.returncode == 2 and "nothing to roll back" in nothing_older.stderr
    not_bundle = _export_cli(store, "publish", str(tmp_path))
    assert not_bundle.returncode == 2 and "not a bundle" in not_bundle.stderr


def test_local_pointer_is_compare_and_set(tiny_bundle: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    version = publish.publish(tiny_bundle, store)
    _, generation = store.read_with_generation(publish.POINTER_KEY)
    publish.promote(store, version)
    with pytest.raises(PreconditionFailed):
        store.write_if_generation(publish.POINTER_KEY, b"{}", generation)


def test_concurrent_local_promotions_exactly_one_wins(tiny_bundle: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    version = publish.publish(tiny_bundle, store)
    assert race_two_promotions(store, version) == ["lost", "won"]


def test_version_without_manifest_is_invisible(tiny_bundle: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    (tmp_path / "store/models/20990101T000000Z-aaaaaa").mkdir(parents=True)
    (tmp_path / "store/models/20990101T000000Z-aaaaaa/model.onnx").write_bytes(b"half")
    assert publish.list_versions(store) == []
    version = publish.publish(tiny_bundle, store)
    assert publish.list_versions(store) == [version]
