"""The promotion gate: a retrained bundle replaces production only if it is not worse on the
official test split and the cross-source set, within a tolerance."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from artifact_store import LocalStore
from export import publish, rollout
from export.promotion_gate import Tolerance, check_promotion
from tests.conftest import ROOT
from tests.tiny_model import clone_bundle


def _manifest(version: str, f1: float | None, auc: float | None) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "version": version,
        "metrics": {"int8": {"test_official": {"n": 2140}}},
        "trust": {"cross_source": {"file": "coaid.csv", "n": 2355}},
    }
    if f1 is not None:
        manifest["metrics"]["int8"]["test_official"]["weighted_f1"] = f1
    if auc is not None:
        manifest["trust"]["cross_source"]["roc_auc"] = auc
    return manifest


PRODUCTION = _manifest("prod", 0.96, 0.85)


def test_worse_candidate_is_refused_with_reasons() -> None:
    verdict = check_promotion(_manifest("new", 0.94, 0.78), PRODUCTION)
    assert not verdict.promote
    assert len(verdict.reasons) == 2
    assert (
        "official test weighted F1 0.9400 is 0.0200 below production's 0.9600"
        in (verdict.reasons[0])
    )
    assert "cross-source ROC-AUC 0.7800" in verdict.reasons[1]
    assert [c.passed for c in verdict.comparisons] == [False, False]


def test_one_worse_number_is_enough_to_refuse() -> None:
    verdict = check_promotion(_manifest("new", 0.97, 0.70), PRODUCTION)
    assert not verdict.promote
    assert [c.passed for c in verdict.comparisons] == [True, False]


@pytest.mark.parametrize(
    ("f1", "auc", "tolerance", "promote"),
    [
        (0.96, 0.85, Tolerance(), True),  # equal
        (0.955, 0.81, Tolerance(), True),  # within the default tolerance
        (0.955, 0.85, Tolerance(max_f1_drop=0.001), False),  # a tighter flag refuses it
        (0.99, 0.95, Tolerance(0.0, 0.0), True),  # better
    ],
)
def test_tolerance(f1: float, auc: float, tolerance: Tolerance, promote: bool) -> None:
    assert check_promotion(_manifest("new", f1, auc), PRODUCTION, tolerance).promote is promote


def test_missing_or_incomparable_numbers() -> None:
    assert check_promotion(_manifest("first", 0.5, 0.5), None).promote  # nothing to compare with
    no_auc = check_promotion(_manifest("new", 0.97, None), PRODUCTION)
    assert not no_auc.promote and "cannot be shown" in no_auc.reasons[0]
    nan = check_promotion(_manifest("new", float("nan"), 0.9), PRODUCTION)
    assert not nan.promote
    # Production without a number is no evidence either way: refused, an operator overrides.
    old_production = check_promotion(_manifest("new", 0.97, 0.9), _manifest("old", 0.96, None))
    assert not old_production.promote and "cannot be compared" in old_production.reasons[0]
    assert [c.passed for c in old_production.comparisons] == [True, False]

    other_set = copy.deepcopy(_manifest("new", 0.97, 0.9))
    other_set["trust"]["cross_source"]["file"] = "other.csv"
    verdict = check_promotion(other_set, PRODUCTION)
    assert not verdict.promote and "different sets" in verdict.reasons[0]


def _publish_with_metrics(store: LocalStore, bundle: Path, tmp: Path, version: str, f1, auc):
    clone = clone_bundle(bundle, tmp / version, version)
    manifest = json.loads((clone / "manifest.json").read_text())
    manifest["metrics"]["int8"]["test_official"]["weighted_f1"] = f1
    manifest.setdefault("trust", {})["cross_source"] = {"file": "c.csv", "n": 10, "roc_auc": auc}
    (clone / "manifest.json").write_text(json.dumps(manifest))
    return publish.publish(clone, store)


def test_worse_bundle_is_published_but_not_promoted(tiny_bundle: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    good = _publish_with_metrics(store, tiny_bundle, tmp_path, "29990101T000000Z-aaaaaa", 0.9, 0.8)
    publish.promote(store, good)
    worse = _publish_with_metrics(store, tiny_bundle, tmp_path, "29990102T000000Z-bbbbbb", 0.8, 0.8)

    decision = rollout.promote_if_not_worse(store, worse, rollout.read_production(store))
    assert not decision.promoted
    assert decision.verdict is not None and decision.verdict["production_version"] == good
    assert "weighted F1 0.8000 is 0.1000 below" in decision.reasons[0]
    assert publish.read_pointer(store)["version"] == good
    assert worse in publish.list_versions(store)  # published all the same

    cli = [sys.executable, "-m", "export", "--store", str(tmp_path / "store"), "gate", worse]
    refused = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 4 and '"promoted": false' in refused.stdout
    loose = subprocess.run(
        [*cli, "--max-f1-drop", "0.2"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert publish.read_pointer(store)["version"] == worse
