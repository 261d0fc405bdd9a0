"""Compare multi-source training recipes on validation, source by source, from the train job's
own results files (`--results-file`, written with per-source validation metrics).

The choice is made on validation only: the mean over sources of each source's validation
weighted F1 (every source counts once, however many rows it has, so a recipe cannot win on
CONSTRAINT's posts alone), then the pooled validation macro-F1. Test and CoAID columns are shown
for the report and never read to choose.

    python -m experiments.source_recipes name=results.json [name=results.json ...] --out table.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def recipe_row(name: str, results: dict[str, Any]) -> dict[str, Any]:
    by_source = results["by_source"]
    val = dict(by_source["model_val"])
    int8 = results["metrics"]["int8"]
    trust = results.get("trust") or {}
    cross = trust.get("cross_source") or {}
    ood = trust.get("ood") or {}
    return {
        "recipe": name,
        "train_rows": sum(r.get("train", 0) for r in results["rows_by_source"].values()),
        "val_source_mean_weighted_f1": statistics.fmean(m["weighted_f1"] for m in val.values()),
        "val_worst_source_weighted_f1": min(m["weighted_f1"] for m in val.values()),
        "val_source_mean_roc_auc": statistics.fmean(m["roc_auc"] for m in val.values()),
        "val_pooled_macro_f1": int8["val"]["macro_f1"],
        "val_pooled_ece": int8["val"]["ece"],
        "val_by_source": {
            s: {k: m[k] for k in ("weighted_f1", "roc_auc", "real_called_fake_share")}
            for s, m in val.items()
        },
        "test_official_weighted_f1": by_source["model"]["official_test"]["weighted_f1"],
        "test_by_source_weighted_f1": {
            s: m["weighted_f1"] for s, m in by_source["model"].items() if s != "official_test"
        },
        "coaid_roc_auc": cross.get("roc_auc"),
        "coaid_real_called_fake": cross.get("real_called_fake_share"),
        "non_news_roc_auc": ood.get("non_news_roc_auc"),
        "training_seconds": results["train"].get("seconds"),
    }


def chosen(rows: list[dict[str, Any]]) -> str:
    """The recipe with the best mean validation weighted F1 over sources; ties: pooled macro-F1,
    then the earlier row."""
    best = max(
        enumerate(rows),
        key=lambda item: (
            round(item[1]["val_source_mean_weighted_f1"], 3),
            round(item[1]["val_pooled_macro_f1"], 3),
            -item[0],
        ),
    )
    return best[1]["recipe"]


def markdown(rows: list[dict[str, Any]]) -> str:
    sources = list(rows[0]["val_by_source"])
    head = (
        "| recipe | train rows | val mean wF1 (chosen on) | val worst wF1 | val mean AUC | "
        "val pooled macro-F1 | val ECE | "
        + " | ".join(f"val {s} wF1 / real called fake" for s in sources)
        + " | official test wF1 | CoAID AUC / real called fake | non-news AUC |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def f(x: float | None, pct: bool = False) -> str:
        if x is None:
            return "n/a"
        return f"{100 * x:.1f}%" if pct else f"{x:.3f}"

    best = chosen(rows)
    for r in rows:
        name = f"**{r['recipe']}** (best on validation)" if r["recipe"] == best else r["recipe"]
        per = [
            f"{f(r['val_by_source'][s]['weighted_f1'])} / "
            f"{f(r['val_by_source'][s]['real_called_fake_share'], pct=True)}"
            if s in r["val_by_source"]
            else "(left out)"
            for s in sources
        ]
        lines.append(
            f"| {name} | {r['train_rows']:,} | {f(r['val_source_mean_weighted_f1'])} | "
            f"{f(r['val_worst_source_weighted_f1'])} | {f(r['val_source_mean_roc_auc'])} | "
            f"{f(r['val_pooled_macro_f1'])} | {f(r['val_pooled_ece'])} | "
            + " | ".join(per)
            + f" | {f(r['test_official_weighted_f1'])} | {f(r['coaid_roc_auc'])} / "
            f"{f(r['coaid_real_called_fake'], pct=True)} | {f(r['non_news_roc_auc'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="name=results.json")
    parser.add_argument("--out", type=Path, help="write the table (.md) and rows (.json) here")
    args = parser.parse_args(argv)
    rows = []
    for run in args.runs:
        name, _, path = run.partition("=")
        rows.append(recipe_row(name, json.loads(Path(path).read_text())))
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.write_text(table)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
