"""Promote and rollback with the expected generation: a change made by someone else since the
pointer was read (a manual rollback during a training run) is never silently undone, on a local
store and on gs:// through fake-gcs-server (GCS's own ifGenerationMatch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from artifact_store import PreconditionFailed, Store, open_store
from export import publish, rollout
from tests.conftest import ROOT
from tests.tiny_model import clone_bundle

V2 = "29990101T000000Z-abcdef"
V3 = "29990201T000000Z-abcdef"


def _two_versions_in_production(store: Store, tiny_bundle: Path, tmp: Path) -> tuple[str, str]:
    """v1 then v2 promoted (so v1 is in history); v3 published, not promoted."""
    v1 = publish.publish(tiny_bundle, store)
    publish.promote(store, v1)
    for version in (V2, V3):
        publish.publish(clone_bundle(tiny_bundle, tmp / version, version), store)
    publish.promote(store, V2)
    return v1, V2


@pytest.fixture(params=["local", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return open_store(tmp_path / "store")
    bucket = request.getfixturevalue("gcs_bucket")  # fake-gcs-server, real client
    return open_store(f"gs://{bucket}/fnd")


def test_promote_with_a_stale_generation_fails(
    store: Store, tiny_bundle: Path, tmp_path: Path
) -> None:
    v1, v2 = _two_versions_in_production(store, tiny_bundle, tmp_path)
    pointer, generation = publish.read_pointer_with_generation(store)
    assert pointer is not None and pointer["version"] == v2

    publish.rollback(store)  # someone else moves production after our read
    with pytest.raises(PreconditionFailed, match="expected"):
        publish.promote(store, V3, expected_generation=generation)
    with pytest.raises(PreconditionFailed):
        publish.rollback(store, expected_generation=generation)
    assert publish.read_pointer(store)["version"] == v1  # their change stands

    _, fresh = publish.read_pointer_with_generation(store)
    assert publish.promote(store, V3, expected_generation=fresh)["version"] == V3


def test_the_store_write_itself_is_conditional(store: Store, tiny_bundle: Path) -> None:
    # Below promote's early check: the write carries the precondition (ifGenerationMatch on GCS),
    # so a change between the read and the write also fails.
    version = publish.publish(tiny_bundle, store)
    _, before = store.read_with_generation(publish.POINTER_KEY)
    publish.promote(store, version)
    with pytest.raises(PreconditionFailed):
        store.write_if_generation(publish.POINTER_KEY, b"{}", before)
    _, now = store.read_with_generation(publish.POINTER_KEY)
    assert store.write_if_generation(publish.POINTER_KEY, b"{}", now) != now


def test_manual_rollback_during_training_is_not_undone(
    store: Store, tiny_bundle: Path, tmp_path: Path
) -> None:
    v1, v2 = _two_versions_in_production(store, tiny_bundle, tmp_path)
    before_training = rollout.read_production(store)
    assert before_training.version == v2

    publish.rollback(store)  # a person rolls back while the job trains
    decision = rollout.promote_if_not_worse(store, V3, expected=before_training)

    assert not decision.promoted
    assert "production changed during the run" in decision.reasons[0]
    assert publish.read_pointer(store)["version"] == v1
    assert decision.summary() == {"rollout": decision.summary()["rollout"]}  # no "production"


def test_unchanged_production_is_promoted(store: Store, tiny_bundle: Path, tmp_path: Path) -> None:
    _two_versions_in_production(store, tiny_bundle, tmp_path)
    before_training = rollout.read_production(store)
    decision = rollout.promote_if_not_worse(store, V3, expected=before_training)
    assert decision.promoted, decision.reasons
    assert decision.summary()["production"]["version"] == V3
    assert publish.read_pointer(store)["version"] == V3


def _cli(store: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export", "--store", str(store), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_expected_generation(tiny_bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    v1, v2 = _two_versions_in_production(open_store(root), tiny_bundle, tmp_path)
    shown = json.loads(_cli(root, "pointer").stdout)
    assert shown["pointer"]["version"] == v2
    stale = str(shown["generation"])

    assert _cli(root, "rollback", "--expected-generation", stale).returncode == 0
    lost = _cli(root, "promote", V3, "--expected-generation", stale)
    assert lost.returncode == 3 and "expected" in lost.stderr and "Traceback" not in lost.stderr
    assert json.loads(_cli(root, "pointer").stdout)["pointer"]["version"] == v1
