"""The promotion gate on every path that makes a version production: promote, publish --promote
and promote-candidate refuse a worse version (exit 4, production unchanged) and one that cannot
be compared with production, unless an operator overrides with --force REASON, which is logged;
rollback stays possible and is logged as ungated."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from export import publish
from export.store import LocalStore
from tests.conftest import ROOT
from tests.tiny_model import clone_bundle

GOOD = "29990101T000000Z-aaaaaa"
WORSE = "29990102T000000Z-bbbbbb"
BETTER = "29990103T000000Z-cccccc"


def _bundle_with_metrics(bundle: Path, tmp: Path, version: str, f1: float | None) -> Path:
    """A clone of the tiny bundle whose manifest reports `f1` (None: no such number)."""
    clone = clone_bundle(bundle, tmp / version, version)
    manifest = json.loads((clone / "manifest.json").read_text())
    test_official = manifest["metrics"]["int8"]["test_official"]
    test_official.pop("weighted_f1", None)
    if f1 is not None:
        test_official["weighted_f1"] = f1
    manifest.setdefault("trust", {})["cross_source"] = {"file": "c.csv", "n": 10, "roc_auc": 0.8}
    (clone / "manifest.json").write_text(json.dumps(manifest))
    return clone


@pytest.fixture
def store(tiny_bundle: Path, tmp_path: Path) -> LocalStore:
    """GOOD (wF1 0.9) production; WORSE (0.8) and BETTER (0.95) published, not promoted."""
    store = LocalStore(tmp_path / "store")
    for version, f1 in ((GOOD, 0.9), (WORSE, 0.8), (BETTER, 0.95)):
        publish.publish(_bundle_with_metrics(tiny_bundle, tmp_path, version, f1), store)
    publish.promote(store, GOOD)
    return store


def _cli(store: LocalStore, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export", "--store", str(store.root), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _production(store: LocalStore) -> str:
    return publish.read_pointer(store)["version"]


def test_promote_refuses_a_worse_version_unless_forced(
    store: LocalStore, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(publish.PromotionRefused, match=r"weighted F1 0\.8000 is 0\.1000 below"):
        publish.promote(store, WORSE)
    assert _production(store) == GOOD

    with pytest.raises(ValueError, match="reason"):
        publish.promote(store, WORSE, override="  ")
    with caplog.at_level(logging.WARNING, logger="export.promotion"):
        assert publish.promote(store, WORSE, override="hotfix for a bad label")["version"] == WORSE
    overridden = [r.getMessage() for r in caplog.records if "OVERRIDDEN" in r.getMessage()]
    assert overridden and "hotfix for a bad label" in overridden[0]
    assert "below production" in overridden[0]  # the verdict it overrode


def test_promote_command_exits_4_and_force_needs_a_reason(store: LocalStore) -> None:
    refused = _cli(store, "promote", WORSE)
    assert refused.returncode == 4, refused.stderr
    assert json.loads(refused.stdout)["promote"] is False
    assert "--force REASON" in refused.stderr and "Traceback" not in refused.stderr
    assert _production(store) == GOOD

    assert _cli(store, "promote", WORSE, "--force", "").returncode == 2  # no reason, no override
    forced = _cli(store, "promote", WORSE, "--force", "operator accepts the drop")
    assert forced.returncode == 0, forced.stderr
    assert "OVERRIDDEN" in forced.stderr and "operator accepts the drop" in forced.stderr
    assert _production(store) == WORSE

    better = _cli(store, "promote", BETTER)
    assert better.returncode == 0, better.stderr
    assert _production(store) == BETTER


def test_publish_promote_is_gated(store: LocalStore, tiny_bundle: Path, tmp_path: Path) -> None:
    worse = _bundle_with_metrics(tiny_bundle, tmp_path / "new", "29990104T000000Z-dddddd", 0.7)
    refused = _cli(store, "publish", str(worse), "--promote")
    assert refused.returncode == 4, refused.stderr
    assert "29990104T000000Z-dddddd" in publish.list_versions(store)  # published all the same
    assert _production(store) == GOOD
    loose = _cli(store, "publish", str(worse), "--promote", "--max-f1-drop", "0.3")
    assert loose.returncode == 0, loose.stderr
    assert _production(store) == "29990104T000000Z-dddddd"


def test_promote_candidate_is_gated(store: LocalStore) -> None:
    publish.start_candidate(store, WORSE, "canary", 0.1)
    with pytest.raises(publish.PromotionRefused):
        publish.promote_candidate(store)
    refused = _cli(store, "promote-candidate")
    assert refused.returncode == 4, refused.stderr
    pointer = publish.read_pointer(store)
    assert pointer["version"] == GOOD and pointer["candidate"]["version"] == WORSE

    forced = _cli(store, "promote-candidate", "--force", "canary looked fine for a week")
    assert forced.returncode == 0, forced.stderr
    assert _production(store) == WORSE


def test_production_without_the_number_refuses_unless_forced(
    store: LocalStore, tiny_bundle: Path, tmp_path: Path
) -> None:
    unmeasured = "29990105T000000Z-eeeeee"
    publish.publish(_bundle_with_metrics(tiny_bundle, tmp_path, unmeasured, None), store)
    publish.promote(store, unmeasured, override="an older bundle without the number")

    with pytest.raises(publish.PromotionRefused, match="production has no"):
        publish.promote(store, BETTER)
    assert _production(store) == unmeasured
    assert publish.promote(store, BETTER, override="measured by hand")["version"] == BETTER


def test_rollback_is_not_gated_and_says_so(
    store: LocalStore, caplog: pytest.LogCaptureFixture
) -> None:
    publish.promote(store, BETTER)
    publish.promote(store, WORSE, override="test")  # production: WORSE, history GOOD, BETTER
    with caplog.at_level(logging.WARNING, logger="export.promotion"):
        assert publish.rollback(store)["version"] == BETTER
    assert any("without the promotion gate" in r.getMessage() for r in caplog.records)
    # Back to a worse version than the current one: a rollback is a person's decision.
    rolled = _cli(store, "rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert _production(store) == GOOD
    assert "without the promotion gate" in rolled.stderr
