"""The pointer's candidate (canary or shadow): what export writes validates against the schema and
reads back; old pointers without one still parse; canary, shadow, promote-candidate and abort
take the same generation precondition and completeness check as promote and rollback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from artifact_store import LocalStore, PreconditionFailed
from export import publish
from production_pointer import POINTER_KEY, Candidate, PointerError, parse_pointer
from tests.conftest import ROOT
from tests.tiny_model import clone_bundle

SCHEMA = json.loads((Path(publish.__file__).parent / "production_pointer.schema.json").read_text())
V2 = "29990101T000000Z-abcdef"
V3 = "29990201T000000Z-abcdef"


@pytest.fixture
def store(tiny_bundle: Path, tmp_path: Path) -> LocalStore:
    """v1 production; V2 and V3 published, not promoted."""
    store = LocalStore(tmp_path / "store")
    publish.promote(store, publish.publish(tiny_bundle, store))
    for version in (V2, V3):
        publish.publish(clone_bundle(tiny_bundle, tmp_path / version, version), store)
    return store


def _on_disk(store: LocalStore) -> dict:
    written = json.loads(store.read_bytes(POINTER_KEY))
    jsonschema.validate(written, SCHEMA)
    assert parse_pointer(json.dumps(written)).as_dict() == written
    return written


def test_a_pointer_without_a_candidate_reads_as_before() -> None:
    old = {"version": "20240101T000000Z-aaaaaa", "promoted_at": None, "previous": None}
    pointer = parse_pointer(json.dumps(old))
    assert pointer.candidate is None and "candidate" not in pointer.as_dict()


def test_canary_shadow_abort_and_promote_write_valid_pointers(store: LocalStore) -> None:
    v1 = publish.read_pointer(store)["version"]

    canary = publish.start_candidate(store, V2, "canary", 0.1)
    assert canary == _on_disk(store)
    assert canary["version"] == v1  # production itself does not move
    assert canary["candidate"]["version"] == V2 and canary["candidate"]["fraction"] == 0.1
    assert parse_pointer(json.dumps(canary)).candidate == Candidate(
        V2, "canary", 0.1, canary["candidate"]["started_at"]
    )

    shadow = publish.start_candidate(store, V3, "shadow")  # replaces the canary
    assert _on_disk(store)["candidate"] == {
        "version": V3,
        "mode": "shadow",
        "started_at": shadow["candidate"]["started_at"],
    }
    assert "candidate" not in publish.abort_candidate(store)
    assert "candidate" not in _on_disk(store)

    publish.start_candidate(store, V2, "shadow")
    promoted = publish.promote_candidate(store)
    assert promoted == _on_disk(store)
    assert (promoted["version"], promoted["previous"], promoted["history"]) == (V2, v1, [v1])
    assert "candidate" not in promoted


def test_promote_and_rollback_keep_a_running_candidate(store: LocalStore) -> None:
    v1 = publish.read_pointer(store)["version"]
    publish.start_candidate(store, V3, "canary", 0.25)
    assert publish.promote(store, V2)["candidate"]["version"] == V3
    assert publish.rollback(store)["candidate"]["version"] == V3
    # ...unless the candidate is what becomes production.
    assert "candidate" not in publish.promote(store, V3)
    assert publish.read_pointer(store)["previous"] == v1


def test_refusals(store: LocalStore, tmp_path: Path) -> None:
    v1 = publish.read_pointer(store)["version"]
    with pytest.raises(LookupError, match="already production"):
        publish.start_candidate(store, v1, "shadow")
    with pytest.raises(LookupError, match="no candidate to promote"):
        publish.promote_candidate(store)
    with pytest.raises(LookupError, match="no candidate to abort"):
        publish.abort_candidate(store)
    with pytest.raises(ValueError, match="fraction"):
        publish.start_candidate(store, V2, "canary", 1.0)
    (tmp_path / "store" / "models" / V2 / "model.onnx").unlink()
    with pytest.raises(publish.IncompleteVersion, match=r"model\.onnx is missing"):
        publish.start_candidate(store, V2, "shadow")
    assert "candidate" not in _on_disk(store)


def test_a_stale_generation_loses(store: LocalStore) -> None:
    _, generation = publish.read_pointer_with_generation(store)
    publish.start_candidate(store, V2, "canary", 0.1)  # someone else moves the pointer
    for move in (
        lambda: publish.start_candidate(store, V3, "shadow", expected_generation=generation),
        lambda: publish.promote_candidate(store, expected_generation=generation),
        lambda: publish.abort_candidate(store, expected_generation=generation),
    ):
        with pytest.raises(PreconditionFailed, match="expected"):
            move()
    assert _on_disk(store)["candidate"]["version"] == V2  # their change stands


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        ({"version": "../x", "mode": "shadow"}, "'candidate' with no valid 'version'"),
        ({"version": V2, "mode": "blue-green"}, "mode"),
        ({"version": V2, "mode": "canary"}, "'fraction'"),
        ({"version": V2, "mode": "canary", "fraction": 1.5}, "'fraction'"),
    ],
)
def test_the_reader_refuses_a_broken_candidate(candidate: dict, message: str) -> None:
    pointer = {"version": "20240101T000000Z-aaaaaa", "history": [], "candidate": candidate}
    with pytest.raises(PointerError, match=message):
        parse_pointer(json.dumps(pointer))


def _cli(store: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export", "--store", str(store), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli(store: LocalStore, tmp_path: Path) -> None:
    root = tmp_path / "store"
    stale = str(json.loads(_cli(root, "pointer").stdout)["generation"])
    assert json.loads(_cli(root, "canary", V2, "--fraction", "0.1").stdout)["candidate"] == {
        "version": V2,
        "mode": "canary",
        "fraction": 0.1,
        "started_at": _on_disk(store)["candidate"]["started_at"],
    }
    lost = _cli(root, "shadow", V3, "--expected-generation", stale)
    assert lost.returncode == 3 and "expected" in lost.stderr and "Traceback" not in lost.stderr
    bad = _cli(root, "canary", V3, "--fraction", "2")
    assert bad.returncode == 2 and "(0, 1)" in bad.stderr

    fresh = str(json.loads(_cli(root, "pointer").stdout)["generation"])
    assert _cli(root, "shadow", V3, "--expected-generation", fresh).returncode == 0
    assert _cli(root, "abort").returncode == 0
    nothing = _cli(root, "promote-candidate")
    assert nothing.returncode == 2 and "no candidate to promote" in nothing.stderr
    assert _cli(root, "shadow", V3).returncode == 0
    assert json.loads(_cli(root, "promote-candidate").stdout)["version"] == V3
    assert _on_disk(store)["version"] == V3
