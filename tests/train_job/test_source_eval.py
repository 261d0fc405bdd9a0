"""Results per source (train_job/source_eval.py): each source's test split and the official test
split, the model beside a TF-IDF baseline trained on the same train split, in the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving_core.bundle import fetch_bundle
from serving_core.model import Model
from tests.conftest import DATA_DIR, ROOT, tiny_config
from train_job.data import Dataset
from train_job.source_eval import OFFICIAL_TEST, results_by_source, source_metrics


def test_source_metrics_count_real_items_called_fake() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1])
    p_fake = np.array([0.9, 0.6, 0.2, 0.1, 0.8, 0.4])
    m = source_metrics(p_fake, labels, threshold=0.5)
    assert m["real_called_fake_share"] == pytest.approx(2 / 4)
    assert m["fake_called_real_share"] == pytest.approx(1 / 2)
    assert m["roc_auc"] == pytest.approx(5 / 8)  # the fakes above 3 and 2 of the 4 reals
    assert (m["n"], m["fake"], m["real"]) == (6, 2, 4)
    # A threshold moves the shares: at 0.95 nothing is called fake.
    assert source_metrics(p_fake, labels, threshold=0.95)["real_called_fake_share"] == 0
    # One label only: no ROC-AUC, and no share of the missing label.
    one = source_metrics(np.array([0.2, 0.7]), np.array([0, 0]), 0.5)
    assert one["roc_auc"] is None and one["fake_called_real_share"] is None


def _split(texts: list[str], labels: list[int], source: str) -> pd.DataFrame:
    return pd.DataFrame({"text": texts, "label": labels, "source": source})


def test_baseline_is_trained_on_train_and_scored_per_source() -> None:
    # "fake" words mark fake items in source a; source b's items use other words entirely.
    train = _split(
        [f"shocking hoax claim {i}" for i in range(30)]
        + [f"ministry report update {i}" for i in range(30)],
        [1] * 30 + [0] * 30,
        "a",
    )
    val = _split(["shocking hoax", "ministry report"] * 5, [1, 0] * 5, "a")
    test = pd.concat(
        [
            _split(["hoax claim shocking", "report from the ministry"], [1, 0], "a"),
            _split(["a quiet day in town", "another quiet morning"], [1, 0], "b"),
        ],
        ignore_index=True,
    )
    ds = Dataset(splits={"train": train, "val": val, "test": test}, test_official=test.iloc[:2])
    model_p = np.array([0.9, 0.1, 0.9, 0.9])
    results = results_by_source(ds, model_p, 0.5, model_p[:2], seed=0)
    assert set(results["model"]) == set(results["tfidf"]) == {"a", "b", OFFICIAL_TEST}
    assert results["model"]["b"]["real_called_fake_share"] == 1.0
    assert results["model"]["a"]["weighted_f1"] == 1.0
    assert results["tfidf"]["a"]["weighted_f1"] == 1.0  # its own words separate source a
    assert results["tfidf"][OFFICIAL_TEST]["n"] == 2
    assert 0.05 <= results["tfidf_threshold"] <= 0.95


def test_every_bundle_reports_its_test_per_source_beside_the_baseline(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    by_source = manifest["metrics"]["by_source"]
    source = DATA_DIR.name
    for name in ("model", "tfidf"):
        assert set(by_source[name]) == {source, OFFICIAL_TEST}
        official = by_source[name][OFFICIAL_TEST]
        assert official["n"] == manifest["metrics"]["int8"]["test_official"]["n"]
    assert by_source["model"][source]["n"] == manifest["metrics"]["int8"]["test"]["n"]
    assert manifest["dataset"]["rows_by_source"][source]["test"] == by_source["model"][source]["n"]


def test_a_run_on_a_mix_keeps_each_rows_source_into_the_bundle(
    tiny_base_model: Path, tmp_path: Path
) -> None:
    from train_job.pipeline import run
    from train_job.run_record import run_summary
    from train_job.trust_eval import BundleScorer

    rumours = pd.read_csv(ROOT / "data/multisource/covid_rumor.csv.gz")
    rumours = rumours[rumours["label"] != "unverified"].sample(400, random_state=0)
    rumours[["title", "label"]].to_csv(tmp_path / "other.csv", index=False)
    (tmp_path / "mix.toml").write_text(
        f"""
[sources.constraint]
text = ["tweet"]
[sources.constraint.files]
train = "{DATA_DIR}/Constraint_Train.csv"
val = "{DATA_DIR}/Constraint_Val.csv"
test = "{DATA_DIR}/english_test_with_labels.csv"
[sources.other]
file = "{tmp_path}/other.csv"
test_fraction = 0.2
"""
    )
    cfg = tiny_config(
        tiny_base_model,
        tmp_path,
        sources=str(tmp_path / "mix.toml"),
        source_train_cap=200,
        source_balance="class",
        source_adversary=0.1,
        source_heads=True,
        calibration="isotonic",
        max_train_examples=0,
        epochs=1,
        promote=False,
        ood_eval_data="",
        non_news_reference_data="",
        unseen_news_data="",
        cross_source_eval_data="",
    )
    summary = run(cfg)
    assert "other          n=" in run_summary(summary)  # the per-source lines a person reads
    manifest = json.loads((Path(summary["bundle_dir"]) / "manifest.json").read_text())
    dataset = manifest["dataset"]
    assert dataset["mix"]["sources"]["other"]["split"] == "hash"
    assert dataset["rows_by_source"]["constraint"]["train"] == 200
    assert dataset["rows_by_source"]["other"]["train"] <= 200
    by_source = manifest["metrics"]["by_source"]
    assert set(by_source["model"]) == {"constraint", "other", OFFICIAL_TEST}
    # The official test split is CONSTRAINT's test file, whole; the pooled test has both sources.
    assert by_source["model"][OFFICIAL_TEST]["n"] == 2140
    assert by_source["model"]["other"]["n"] == dataset["rows_by_source"]["other"]["test"]
    # The isotonic map is served, by the function as by the job's own scorer.
    assert manifest["calibration"]["map"]["margins"]
    assert manifest["metrics"]["int8"]["val"]["calibration"] == "isotonic"
    texts = ["Vaccines are safe, says the WHO", "5G spreads the virus", "Schools reopen on Monday"]
    bundle = fetch_bundle(summary["bundle_dir"], tmp_path / "cache")
    served = Model.load(bundle, 1, 8, 10_000).predict(texts)
    p_fake, _, _ = BundleScorer(Path(summary["bundle_dir"])).predict(texts)
    assert [p.probabilities["fake"] for p in served] == pytest.approx(p_fake.tolist(), abs=1e-6)
    # Validation per source, the numbers a recipe is chosen on, has every source's val rows.
    for source in ("constraint", "other"):
        val = by_source["model_val"][source]
        assert val["n"] == dataset["rows_by_source"][source]["val"]
        assert 0.0 <= val["weighted_f1"] <= 1.0
