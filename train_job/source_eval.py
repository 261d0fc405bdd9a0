"""Results per source: the model's test metrics on each source's test split and on the official
test split, beside a TF-IDF + logistic-regression baseline trained on the same train split,
thresholded on the same validation split and scored on the same test splits.

A model that has learnt one source's style rather than what makes news fake shows it here: its
pooled test score can be high while one source's real items are mostly called fake.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline

from train_job.evaluate import choose_threshold, expected_calibration_error
from train_job.tables import Dataset

OFFICIAL_TEST = "official_test"


def source_metrics(p_fake: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Weighted F1, ROC-AUC, ECE and the share of real items called fake (and of fake items
    called real) at the given threshold on P(fake)."""
    labels = np.asarray(labels).astype(int)
    pred = (p_fake >= threshold).astype(int)
    real = labels == 0
    return {
        "n": len(labels),
        "fake": int(labels.sum()),
        "real": int(real.sum()),
        "weighted_f1": float(f1_score(labels, pred, average="weighted", zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, p_fake)) if len(set(labels)) == 2 else None,
        "ece": expected_calibration_error(p_fake, labels),
        "real_called_fake_share": float(pred[real].mean()) if real.any() else None,
        "fake_called_real_share": float(1 - pred[~real].mean()) if (~real).any() else None,
    }


def metrics_by_source(test: pd.DataFrame, p_fake: np.ndarray, threshold: float) -> dict:
    """{source: metrics on its test rows} for one model's P(fake) on the test split."""
    out = {}
    sources = test["source"].to_numpy()
    labels = test["label"].to_numpy()
    for source in dict.fromkeys(sources):
        rows = sources == source
        out[str(source)] = source_metrics(p_fake[rows], labels[rows], threshold)
    return out


def tfidf_model(seed: int) -> Pipeline:
    """Word 1-2 grams, sublinear term frequency; fixed settings, not tuned on any split."""
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=200_000),
        LogisticRegression(max_iter=2000, random_state=seed),
    )


def _as_logits(p_fake: np.ndarray) -> np.ndarray:
    """Log-probabilities, so that the model's threshold rule (on softmax of logits) applies."""
    p = np.clip(p_fake, 1e-7, 1 - 1e-7)
    return np.log(np.column_stack([1 - p, p]))


def fit_tfidf(dataset: Dataset, seed: int) -> tuple[Pipeline, float]:
    """The baseline fitted on train and its threshold chosen on validation by the model's rule."""
    train, val = dataset.splits["train"], dataset.splits["val"]
    model = tfidf_model(seed).fit(train["text"].tolist(), train["label"].to_numpy())
    p_val = model.predict_proba(val["text"].tolist())[:, 1]
    threshold = choose_threshold(_as_logits(p_val), val["label"].to_numpy(), 1.0)
    return model, threshold


def results_by_source(
    dataset: Dataset,
    model_p_fake: np.ndarray,
    model_threshold: float,
    model_official_p_fake: np.ndarray,
    seed: int,
    model_val_p_fake: np.ndarray | None = None,
) -> dict:
    """{"model": {...}, "tfidf": {...}}: each {source: metrics, "official_test": metrics}, plus
    the baseline's threshold and, given the model's P(fake) on validation, its metrics per
    source on the validation split ("model_val"): what recipes are chosen on, source by source,
    without looking at any test split."""
    test, official = dataset.splits["test"], dataset.test_official
    baseline, baseline_threshold = fit_tfidf(dataset, seed)
    p_test = baseline.predict_proba(test["text"].tolist())[:, 1]
    p_official = baseline.predict_proba(official["text"].tolist())[:, 1]
    out = {}
    for name, p, p_off, threshold in (
        ("model", model_p_fake, model_official_p_fake, model_threshold),
        ("tfidf", p_test, p_official, baseline_threshold),
    ):
        by_source = metrics_by_source(test, p, threshold)
        by_source[OFFICIAL_TEST] = source_metrics(p_off, official["label"].to_numpy(), threshold)
        out[name] = by_source
    out["tfidf_threshold"] = baseline_threshold
    if model_val_p_fake is not None:
        out["model_val"] = metrics_by_source(
            dataset.splits["val"], model_val_p_fake, model_threshold
        )
    return out


def table_lines(results: dict) -> list[str]:
    """One line per source: the model's numbers beside the baseline's."""

    def fmt(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:.3f}"

    lines = []
    for source, m in results["model"].items():
        b = results["tfidf"][source]
        lines.append(
            f"{source:<14} n={m['n']:<5} weighted_f1 {fmt(m['weighted_f1'])} "
            f"(tfidf {fmt(b['weighted_f1'])}) roc_auc {fmt(m['roc_auc'])} "
            f"(tfidf {fmt(b['roc_auc'])}) real_called_fake {fmt(m['real_called_fake_share'])} "
            f"(tfidf {fmt(b['real_called_fake_share'])}) ece {fmt(m['ece'])}"
        )
    return lines


def rows_by_source(dataset: Dataset) -> dict[str, dict[str, int]]:
    """{source: {split: rows}} as trained and scored."""
    counts: dict[str, dict[str, int]] = {}
    for split, frame in dataset.splits.items():
        for source, n in frame["source"].value_counts(sort=False).items():
            counts.setdefault(str(source), {})[split] = int(n)
    return counts
