"""How far could combining models go? An upper bound for distillation, measured, not guessed.

Distilling a few-seed ensemble into the single deployed model is a possible lever, but
distillation rarely beats its teacher, so before building it this tool scores the teachers that
are at hand, as served (int8 ONNX, calibrated, from the bundles the runs published):

- each run's bundle alone, and the average of their calibrated P(fake) (the ensemble);
- a TF-IDF logistic regression (word 1-2-grams + character 2-5-grams, C chosen on validation),
  a model that sees different cues (exact handles, spellings) than the fine-tuned encoder;
- each bundle and the ensemble blended with it: log-odds + a * TF-IDF log-odds, a chosen on
  validation.

Every choice is made on the job's validation split; the official test split is only scored.
Reads the results files the train job wrote (`--results-file`); writes <--out>.{json,md}.

    python -m experiments.ensemble_ceiling reports/train_full_seed4{2,3,4}.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from experiments.seed_summary import bundle_folder
from train_job.config import TrainConfig
from train_job.data import load_dataset
from train_job.trust_eval import BundleScorer

ROOT = Path(__file__).resolve().parents[1]

BLEND_WEIGHTS = np.round(np.linspace(0.0, 1.5, 31), 2)
TFIDF_C = (1.0, 3.0, 10.0, 30.0)


def weighted_f1(labels: np.ndarray, log_odds: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(labels, (log_odds >= 0).astype(int), average="weighted"))


def log_odds(p_fake: np.ndarray) -> np.ndarray:
    p = np.clip(p_fake, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def tfidf_log_odds(
    train: tuple[list[str], np.ndarray], val: list[str], val_y: np.ndarray, test: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    x_train = hstack([words.fit_transform(train[0]), chars.fit_transform(train[0])]).tocsr()
    x_val = hstack([words.transform(val), chars.transform(val)]).tocsr()
    x_test = hstack([words.transform(test), chars.transform(test)]).tocsr()
    best: tuple[float, float, Any] | None = None
    for c in TFIDF_C:
        model = LogisticRegression(C=c, max_iter=5000).fit(x_train, train[1])
        score = weighted_f1(val_y, model.decision_function(x_val))
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None
    _, c, model = best
    return model.decision_function(x_val), model.decision_function(x_test), {"C": c}


def best_blend(
    base: tuple[np.ndarray, np.ndarray],
    extra: tuple[np.ndarray, np.ndarray],
    val_y: np.ndarray,
    test_y: np.ndarray,
) -> dict[str, float]:
    """Weight of `extra` chosen on validation (ties go to the smaller weight), test scored once."""
    scores = [weighted_f1(val_y, base[0] + a * extra[0]) for a in BLEND_WEIGHTS]
    a = float(BLEND_WEIGHTS[int(np.argmax(scores))])
    return {
        "weight": a,
        "val_weighted_f1": max(scores),
        "test_weighted_f1": weighted_f1(test_y, base[1] + a * extra[1]),
    }


def measure(results_files: list[Path]) -> dict[str, Any]:
    dataset = load_dataset(TrainConfig())
    train, val = dataset.splits["train"], dataset.splits["val"]
    test = dataset.test_official
    assert test is not None
    val_y, test_y = val["label"].to_numpy(), test["label"].to_numpy()

    members: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for path in results_files:
        results = json.loads(path.read_text())
        folder = bundle_folder(results)
        if folder is None:
            raise SystemExit(f"{path}: bundle {results['version']} is not in a local store here")
        scorer = BundleScorer(folder)
        p_val, p_test = (scorer.predict(frame["text"].tolist())[0] for frame in (val, test))
        members[path.stem] = (log_odds(p_val), log_odds(p_test))
    tfidf_val, tfidf_test, tfidf_params = tfidf_log_odds(
        (train["text"].tolist(), train["label"].to_numpy()),
        val["text"].tolist(),
        val_y,
        test["text"].tolist(),
    )
    tfidf = (tfidf_val, tfidf_test)

    def mean_probability(split: int) -> np.ndarray:
        return np.mean([1 / (1 + np.exp(-scores[split])) for scores in members.values()], axis=0)

    ensemble = (log_odds(mean_probability(0)), log_odds(mean_probability(1)))
    rows = []
    for name, scores in [*members.items(), ("ensemble (mean P(fake))", ensemble)]:
        rows.append(
            {
                "model": name,
                "val_weighted_f1": weighted_f1(val_y, scores[0]),
                "test_weighted_f1": weighted_f1(test_y, scores[1]),
                "blend_with_tfidf": best_blend(scores, tfidf, val_y, test_y),
            }
        )
    return {
        "command": " ".join(["python -m experiments.ensemble_ceiling", *map(str, results_files)]),
        "test_split": f"official test ({len(test_y)} posts); choices on validation "
        f"({len(val_y)} posts)",
        "tfidf": {
            **tfidf_params,
            "val_weighted_f1": weighted_f1(val_y, tfidf_val),
            "test_weighted_f1": weighted_f1(test_y, tfidf_test),
        },
        "rows": rows,
        "best_test_weighted_f1": max(
            max(r["test_weighted_f1"], r["blend_with_tfidf"]["test_weighted_f1"]) for r in rows
        ),
    }


def markdown(summary: dict[str, Any]) -> str:
    t = summary["tfidf"]
    lines = [
        "# Ensemble ceiling: what combining the models at hand could reach",
        "",
        f"Made by `{summary['command']}`. {summary['test_split']}; weighted F1, int8 bundles "
        "as served (calibrated; decision at P(fake) = 0.5).",
        "",
        f"TF-IDF logistic regression alone (C={t['C']:g}): val {t['val_weighted_f1']:.4f}, "
        f"test {t['test_weighted_f1']:.4f}.",
        "",
        "| model | val | test | + TF-IDF: weight | val | test |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        b = r["blend_with_tfidf"]
        lines.append(
            f"| {r['model']} | {r['val_weighted_f1']:.4f} | {r['test_weighted_f1']:.4f} "
            f"| {b['weight']:.2f} | {b['val_weighted_f1']:.4f} | {b['test_weighted_f1']:.4f} |"
        )
    lines += [
        "",
        f"Best official-test weighted F1 of any combination: "
        f"{summary['best_test_weighted_f1']:.4f} (an upper bound for a model distilled from them).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results files of the train job")
    parser.add_argument("--out", default=str(ROOT / "reports" / "ensemble_ceiling"))
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.results if not p.is_file()]
    if missing:
        print(f"error: no such results file: {', '.join(missing)}", file=sys.stderr)
        return 2
    summary = measure(args.results)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
