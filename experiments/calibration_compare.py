"""Which calibration fits a run's served scores: one temperature, Platt scaling (a slope and a bias
on the raw margin) or an isotonic map, each fitted on the pooled validation split as the bundle
scores it (int8 ONNX). They are compared by validation ECE cross-fitted over the job's random
halvings (train_job/evaluate.py cross_fitted_ece): that is what a profile's
`--calibration` is chosen on. Each source's mean confidence against its accuracy on validation
(under the calibrator fitted on all of it) shows which sources one calibrator leaves over- or
underconfident. Test ECE, pooled and by source, and CoAID's ECE and share of real titles called
fake at 0.5 are for the report only.

    python -m experiments.calibration_compare local/runs/<run id> [...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from export.onnx_logits import logits_and_pooled
from serving_core.calibration import positive_probability
from train_job.batching import encode
from train_job.config import TrainConfig
from train_job.data import load_dataset
from train_job.evaluate import (
    cross_fitted_ece,
    expected_calibration_error,
    fit_temperature,
    isotonic_map,
)

COAID = Path("data/coaid-2020-05/coaid_2020-05_titles.csv")
Calibrator = Callable[[np.ndarray], np.ndarray]  # raw margins -> P(fake)


def fit_temperature_on_margins(margins: np.ndarray, labels: np.ndarray) -> Calibrator:
    temperature = fit_temperature(np.stack([np.zeros_like(margins), margins], axis=1), labels)
    return lambda m: positive_probability(m, {"temperature": temperature})


def fit_platt(margins: np.ndarray, labels: np.ndarray) -> Calibrator:
    model = LogisticRegression(C=1e6).fit(margins.reshape(-1, 1), labels)
    return lambda m: model.predict_proba(np.asarray(m).reshape(-1, 1))[:, 1]


def fit_isotonic(margins: np.ndarray, labels: np.ndarray) -> Calibrator:
    section = {"temperature": 1.0, "map": isotonic_map(margins, labels)}
    return lambda m: positive_probability(m, section)


CALIBRATORS: dict[str, Callable[[np.ndarray, np.ndarray], Calibrator]] = {
    "temperature": fit_temperature_on_margins,
    "platt": fit_platt,
    "isotonic": fit_isotonic,
}


def confidence_by_source(p_fake: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> dict:
    """Per source: the mean confidence in the answer given at 0.5 and the share it got right."""
    answer = (p_fake >= 0.5).astype(int)
    confidence = np.where(answer == 1, p_fake, 1 - p_fake)
    return {
        source: {
            "mean_confidence": float(confidence[sources == source].mean()),
            "accuracy": float((answer == labels)[sources == source].mean()),
        }
        for source in sorted(set(sources))
    }


def served_margins(run: Path, texts: list[str], labels: np.ndarray, cfg: TrainConfig):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    enc = encode(tokenizer, texts, pd.Series(labels), cfg.max_length)
    logits, _ = logits_and_pooled(
        run / "bundle" / "model.onnx", enc.features, tokenizer.pad_token_id or 0
    )
    return logits[:, 1] - logits[:, 0]


def compare(run: Path, titles: Path) -> dict:
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    splits = load_dataset(cfg).splits
    scored = {}
    for name in ("val", "test"):
        frame = splits[name]
        labels = frame["label"].to_numpy()
        margins = served_margins(run, frame["text"].tolist(), labels, cfg)
        scored[name] = (margins, labels, frame["source"].to_numpy())
    coaid = pd.read_csv(titles, dtype=str, keep_default_na=False)
    coaid_labels = (coaid["label"].str.strip().str.lower() == "fake").astype(int).to_numpy()
    coaid_margins = served_margins(run, coaid["title"].tolist(), coaid_labels, cfg)
    val_margins, val_labels, val_sources = scored["val"]
    test_margins, test_labels, test_sources = scored["test"]
    out = {"run": str(run), "n": {"val": len(val_labels), "test": len(test_labels)}}
    for name, fit in CALIBRATORS.items():
        calibrator = fit(val_margins, val_labels)
        p_val, p_test, p_coaid = (calibrator(m) for m in (val_margins, test_margins, coaid_margins))
        out[name] = {
            "val_ece_cross_fitted": cross_fitted_ece(fit, val_margins, val_labels),
            "val_ece_in_sample": expected_calibration_error(p_val, val_labels),
            "val_confidence_by_source": confidence_by_source(p_val, val_labels, val_sources),
            "test_ece": expected_calibration_error(p_test, test_labels),
            "test_ece_by_source": {
                source: expected_calibration_error(
                    p_test[test_sources == source], test_labels[test_sources == source]
                )
                for source in sorted(set(test_sources))
            },
            "coaid_ece": expected_calibration_error(p_coaid, coaid_labels),
            "coaid_real_called_fake": float((p_coaid[coaid_labels == 0] >= 0.5).mean()),
        }
    return out


def markdown(results: list[dict]) -> str:
    lines = [
        "| run | calibration | val ECE cross-fitted (chosen on) | test ECE | CoAID ECE "
        "| CoAID real called fake |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for name in CALIBRATORS:
            row = result[name]
            lines.append(
                f"| {Path(result['run']).name} | {name} | {row['val_ece_cross_fitted']:.4f} "
                f"| {row['test_ece']:.4f} | {row['coaid_ece']:.3f} "
                f"| {row['coaid_real_called_fake']:.1%} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with bundle/ and model/")
    parser.add_argument("--titles", type=Path, default=COAID, help="a title file (CoAID)")
    parser.add_argument("--out", type=Path, help="write the results here as JSON, and as .md")
    args = parser.parse_args(argv)
    results = [compare(run, args.titles) for run in args.runs]
    print(markdown(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(results) + "\n")


if __name__ == "__main__":
    main()
