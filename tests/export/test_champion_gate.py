"""The promotion gate on every path that makes a version production: promote, publish --promote
and promote-candidate refuse a worse version (exit 4, production unchanged) and one that cannot
be compared with production, unless an operator overrides with --force REASON, which is logged;
rollback stays possible and is logged as ungated; --rescore measures both bundles' F1 instead of
trusting their manifests."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from artifact_store import LocalStore
from export import publish
from export.rescore import read_labelled_posts
from tests.conftest import DATA_DIR, ROOT
from tests.tiny_model import clone_bundle

GOOD = "29990101T000000Z-aaaaaa"
WORSE = "29990102T000000Z-bbbbbb"
BETTER = "29990103T000000Z-cccccc"
OFFICIAL_TEST = DATA_DIR / "english_test_with_labels.csv"


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


def test_rescore_measures_both_bundles_instead_of_trusting_their_manifests(
    store: LocalStore, tiny_bundle: Path, tmp_path: Path
) -> None:
    # Same weights as production, but a threshold that calls every post real, and a manifest
    # that claims a better F1 than production's.
    forged = _bundle_with_metrics(tiny_bundle, tmp_path / "forged", "29990106T000000Z-ffffff", 0.99)
    manifest = json.loads((forged / "manifest.json").read_text())
    manifest["decision"]["threshold"] = 1.0
    (forged / "manifest.json").write_text(json.dumps(manifest))
    publish.publish(forged, store)
    posts = tmp_path / "posts.csv"
    rows = OFFICIAL_TEST.read_text(encoding="utf-8").splitlines()[:301]
    posts.write_text("\n".join(rows) + "\n", encoding="utf-8")

    trusted = _cli(store, "gate", "29990106T000000Z-ffffff", "--dry-run")
    assert trusted.returncode == 0, trusted.stdout  # the manifest's own numbers pass
    measured = _cli(store, "gate", "29990106T000000Z-ffffff", "--dry-run", "--rescore", str(posts))
    assert measured.returncode == 4, measured.stdout + measured.stderr
    verdict = json.loads(measured.stdout)
    scored = len(read_labelled_posts(posts).texts)
    assert f"measured here on {posts} ({scored} posts)" in verdict["reasons"][-1]
    f1 = verdict["comparisons"][0]
    assert f1["candidate"] < f1["production"] - 0.01  # production measured too, not 0.9 as claimed

    with pytest.raises(publish.PromotionRefused, match="measured here"):
        publish.promote(store, "29990106T000000Z-ffffff", rescore=read_labelled_posts(posts))
    assert _production(store) == GOOD
    # The same bundle as production, whatever its manifest claims, measures the same.
    assert publish.promote(store, BETTER, rescore=read_labelled_posts(posts))["version"] == BETTER


def test_rescore_weighted_f1_is_sklearns() -> None:
    import random

    from sklearn.metrics import f1_score

    from export.rescore import weighted_f1

    draw = random.Random(0)
    labels = [draw.choice(["real", "fake"]) for _ in range(500)]
    predicted = [y if draw.random() < 0.7 else draw.choice(["real", "fake"]) for y in labels]
    expected = f1_score(labels, predicted, average="weighted")
    assert weighted_f1(labels, predicted) == pytest.approx(expected, abs=1e-12)
    assert weighted_f1(labels, ["real"] * 500) == pytest.approx(
        f1_score(labels, ["real"] * 500, average="weighted", zero_division=0), abs=1e-12
    )
