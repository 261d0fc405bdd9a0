"""What the out-of-domain flag's quantile trades: in-domain posts flagged against CoAID titles
answered "fake" with confidence.

The train job sets the flag's threshold at the 0.98 quantile of the validation posts' distances
(`export/ood.py`). This rescores published bundles as served (int8, `serving_core`) and, for each
quantile asked for, reports the share of official-test posts flagged, the share of CoAID titles
flagged, and the share of real CoAID titles called fake while the flag says in domain. The
quantiles are taken of the whole validation file (the job's own threshold, row "served", of its
validation split without near-duplicates). The quantile is not chosen here: the CoAID set is for
evaluation only.

    python -m experiments.ood_quantile local/store/models/<version> ... --data ../shared/data
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from experiments.weight_soup import read_split, write_outputs

QUANTILES = (0.98, 0.97, 0.96, 0.95)


def real_called_fake_in_domain(
    distances: np.ndarray, p_fake: np.ndarray, is_fake: np.ndarray, threshold: float, cut: float
) -> float:
    """Share of the real titles answered fake (p >= cut) while their distance is in domain."""
    real = ~is_fake
    wrong = (p_fake >= cut) & (distances < threshold) & real
    return float(wrong.sum() / max(real.sum(), 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path, help="published bundle folders")
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--quantiles", default=",".join(map(str, QUANTILES)))
    parser.add_argument("--out", type=Path, default=Path("reports/ood_quantile"))
    args = parser.parse_args(argv)

    from serving_core.bundle import fetch_bundle
    from serving_core.model import Model

    quantiles = [float(q) for q in args.quantiles.split(",")]
    val = read_split(args.data / "constraint-covid19-fakenews/Constraint_Val.csv", "tweet")
    test = read_split(
        args.data / "constraint-covid19-fakenews/english_test_with_labels.csv", "tweet"
    )
    coaid = read_split(args.data / "coaid-2020-05/coaid_2020-05_titles.csv", "title")
    report: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as cache:
        for folder in args.bundles:
            if not (folder / "manifest.json").exists():
                print(f"no bundle at {folder}", file=sys.stderr)
                return 2
            model = Model.load(
                fetch_bundle(str(folder), Path(cache)), intra_op_threads=2, max_batch_size=32,
                max_batch_tokens=4096,
            )  # fmt: skip

            def scored(texts: list[str], model: Model = model) -> tuple[np.ndarray, np.ndarray]:
                predictions = model.predict(texts)
                distances = np.array([p.ood_score for p in predictions], dtype=float)
                p_fake = np.array([p.probabilities[model.positive_label] for p in predictions])
                return distances, p_fake

            val_distances, _ = scored(val[0])
            test_distances, _ = scored(test[0])
            coaid_distances, coaid_p = scored(coaid[0])
            rows = {}
            assert model.ood is not None, f"{folder} has no out-of-domain score"
            thresholds = {"served": model.ood.threshold}  # the job's, on its deduplicated val
            thresholds |= {str(q): float(np.quantile(val_distances, q)) for q in quantiles}
            for q, threshold in thresholds.items():
                rows[q] = {
                    "test_flagged": round(float((test_distances >= threshold).mean()), 4),
                    "coaid_flagged": round(float((coaid_distances >= threshold).mean()), 4),
                    "coaid_real_called_fake_in_domain": round(
                        real_called_fake_in_domain(
                            coaid_distances, coaid_p, coaid[1], threshold, model.threshold
                        ),
                        4,
                    ),
                }
            report[folder.name] = rows

    lines = [
        "# Out-of-domain quantile, CoAID confident errors (`python -m experiments.ood_quantile`)",
        "",
        "int8 bundles as served; threshold = quantile of the validation posts' distances.",
        "",
        "| bundle | quantile | official test flagged | CoAID flagged "
        "| CoAID real called fake in domain |",
        "|---|---|---|---|---|",
    ]
    for name, rows in report.items():
        for q, row in rows.items():
            lines.append(
                f"| {name} | {q} | {row['test_flagged']} | {row['coaid_flagged']} | "
                f"{row['coaid_real_called_fake_in_domain']} |"
            )
    write_outputs(args.out, report, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
