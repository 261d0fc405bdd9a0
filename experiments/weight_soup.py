"""Does averaging the weights of seeds (a uniform "model soup") beat the seeds themselves?

Seeds of one recipe start from the same MiniLM weights, so their fine-tuned weights can be
averaged into one model of the same size, which would still serve as one int8 bundle. This scores
each run's fine-tuned checkpoint (`<work-dir>/<run_id>/best_model`) and their average, in fp32,
on raw text as the function serves it: weighted F1 at 0.5 and ROC-AUC on the official validation
and test files (whole, no near-duplicate removal) and on the cross-source CoAID titles.

    python -m experiments.weight_soup reports/train_full_light05_seed4{2,3,4}.json \
        --work-dir local/runs --out reports/weight_soup
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = {
    "val": ("constraint-covid19-fakenews/Constraint_Val.csv", "tweet"),
    "official_test": ("constraint-covid19-fakenews/english_test_with_labels.csv", "tweet"),
    "coaid": ("coaid-2020-05/coaid_2020-05_titles.csv", "title"),
}


def read_split(path: Path, text_column: str) -> tuple[list[str], np.ndarray]:
    """Texts and labels (True = fake) of a CSV with a `label` column."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([r["label"].strip().lower() == "fake" for r in rows])
    return [r[text_column] for r in rows], labels


def write_outputs(out: Path, report: dict[str, Any], lines: list[str]) -> None:
    """<out>.json (the numbers) and <out>.md (the table), and the table on stdout."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def uniform_soup(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of every floating-point tensor; integer buffers (position ids) from the first."""
    first = states[0]
    return {
        name: (
            sum(state[name].float() for state in states) / len(states)
            if first[name].is_floating_point()
            else first[name]
        )
        for name in first
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results files of the seeds' runs")
    parser.add_argument("--work-dir", type=Path, default=Path("local/runs"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("reports/weight_soup"))
    args = parser.parse_args(argv)

    import torch
    from safetensors.torch import load_file
    from sklearn.metrics import f1_score, roc_auc_score
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    runs = {}
    for path in args.results:
        if not path.exists():
            print(f"no results file {path}", file=sys.stderr)
            return 2
        runs[path.stem] = args.work_dir / json.loads(path.read_text())["run_id"]
    first = next(iter(runs.values()))
    tokenizer = AutoTokenizer.from_pretrained(first / "model")
    model = AutoModelForSequenceClassification.from_pretrained(first / "model").eval()
    fake = {label: i for i, label in model.config.id2label.items()}.get("fake", 1)
    splits = {name: read_split(args.data / file, column) for name, (file, column) in SPLITS.items()}

    def scores() -> dict[str, dict[str, float]]:
        out = {}
        for name, (texts, labels) in splits.items():
            probabilities = []
            with torch.no_grad():
                for start in range(0, len(texts), 64):
                    batch = tokenizer(
                        texts[start : start + 64], truncation=True, max_length=128,
                        padding=True, return_tensors="pt",
                    )  # fmt: skip
                    logits = model(**batch).logits
                    probabilities.append(torch.softmax(logits, -1)[:, fake].numpy())
            p = np.concatenate(probabilities)
            out[name] = {
                "weighted_f1": round(float(f1_score(labels, p >= 0.5, average="weighted")), 4),
                "roc_auc": round(float(roc_auc_score(labels, p)), 4),
            }
        return out

    states = {
        name: load_file(str(run / "best_model" / "model.safetensors")) for name, run in runs.items()
    }
    report: dict[str, Any] = {"runs": {name: run.name for name, run in runs.items()}, "scores": {}}
    for name, state in states.items():
        model.load_state_dict(state)
        report["scores"][name] = scores()
    model.load_state_dict(uniform_soup(list(states.values())))
    report["scores"]["uniform soup"] = scores()

    lines = [
        "# Uniform weight soup of seeds (`python -m experiments.weight_soup`)",
        "",
        "fp32, raw text, threshold 0.5; validation and official test files whole.",
        "",
        "| model | val wF1 | official test wF1 | CoAID ROC-AUC |",
        "|---|---|---|---|",
    ]
    for name, row in report["scores"].items():
        lines.append(
            f"| {name} | {row['val']['weighted_f1']} | {row['official_test']['weighted_f1']} | "
            f"{row['coaid']['roc_auc']} |"
        )
    write_outputs(args.out, report, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
