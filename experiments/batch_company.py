"""How much a served int8 score depends on the texts sent with it: each title of a labelled title
file (CoAID by default) scored alone and inside requests of several random titles, through the
function's own model code (serving_core), once with MAX_BATCH_SIZE=1 and once with the default.

Dynamic int8 quantization takes one activation scale per onnxruntime call, over every text and
pad of the batch, so the same title can get a different P(fake) in different company.

    python -m experiments.batch_company local/store/models/production.json \
        [--titles FILE] [--request-size 16] [--max-batch-size 32] [--out reports/batch_company]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from serving_core.bundle import fetch_bundle
from serving_core.model import Model

COAID = Path("data/coaid-2020-05/coaid_2020-05_titles.csv")


def read_titles(path: Path) -> tuple[list[str], np.ndarray]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    labels = (frame["label"].str.strip().str.lower() == "fake").astype(int).to_numpy()
    return frame["title"].tolist(), labels


def score_requests(model: Model, requests: list[list[int]], titles: list[str]):
    """P(fake) and label of each title as answered inside its request; wall seconds."""
    p_fake = np.zeros(len(titles))
    fake = np.zeros(len(titles), dtype=int)
    started = time.perf_counter()
    for request in requests:
        for i, answer in zip(request, model.predict([titles[i] for i in request]), strict=True):
            p_fake[i] = answer.probabilities[model.positive_label]
            fake[i] = int(answer.label == model.positive_label)
    return p_fake, fake, time.perf_counter() - started


def measure(
    model_uri: str,
    titles: list[str],
    labels: np.ndarray,
    request_size: int,
    max_batch_size: int,
    cache_dir: Path,
    seed: int = 0,
) -> dict:
    bundle = fetch_bundle(model_uri, cache_dir)
    one_per_call = Model.load(bundle, 1, max_batch_size=1, max_batch_tokens=1_000_000)
    batched = Model.load(bundle, 1, max_batch_size=max_batch_size, max_batch_tokens=1_000_000)
    order = np.random.default_rng(seed).permutation(len(titles)).tolist()
    requests = [order[s : s + request_size] for s in range(0, len(order), request_size)]
    alone = [[i] for i in range(len(titles))]

    p_alone, fake_alone, _ = score_requests(one_per_call, alone, titles)
    seconds: dict[str, list[float]] = {"batched": [], "one_per_call": []}
    for _ in range(2):  # interleaved, the faster of each counts: neither runs only cold
        p_company, fake_company, took = score_requests(batched, requests, titles)
        seconds["batched"].append(took)
        p_again, _, took = score_requests(one_per_call, requests, titles)
        seconds["one_per_call"].append(took)
    seconds_batched, seconds_one_per_call = min(seconds["batched"]), min(seconds["one_per_call"])
    moved = np.abs(p_company - p_alone)
    return {
        "bundle_version": bundle.version,
        "titles": len(titles),
        "request_size": request_size,
        "max_batch_size": max_batch_size,
        "onnxruntime_threads": 1,
        "p_fake_moved_mean": float(moved.mean()),
        "p_fake_moved_p99": float(np.quantile(moved, 0.99)),
        "p_fake_moved_max": float(moved.max()),
        "labels_changed_share": float((fake_company != fake_alone).mean()),
        "one_per_call_equals_alone": bool(np.array_equal(p_again, p_alone)),
        "roc_auc_alone": float(roc_auc_score(labels, p_alone)),
        "roc_auc_in_company": float(roc_auc_score(labels, p_company)),
        "seconds_each_run": {mode: [round(t, 2) for t in runs] for mode, runs in seconds.items()},
        "seconds_batched": round(seconds_batched, 2),
        "seconds_one_per_call": round(seconds_one_per_call, 2),
        "slowdown_one_per_call": round(seconds_one_per_call / seconds_batched, 2),
    }


def markdown(result: dict) -> str:
    r = result
    return "\n".join(
        [
            "# Batch company of the served int8 model (`python -m experiments.batch_company`)",
            "",
            f"Bundle {r['bundle_version']}, {r['titles']} titles, requests of {r['request_size']} "
            f"random titles, {r['onnxruntime_threads']} onnxruntime thread.",
            "",
            "| what | value |",
            "|---|---|",
            f"| P(fake) moved from alone, mean / p99 / max | {r['p_fake_moved_mean']:.4f} / "
            f"{r['p_fake_moved_p99']:.4f} / {r['p_fake_moved_max']:.4f} |",
            f"| labels changed by company (MAX_BATCH_SIZE={r['max_batch_size']}) | "
            f"{r['labels_changed_share']:.2%} |",
            f"| ROC-AUC alone / in company | {r['roc_auc_alone']:.4f} / "
            f"{r['roc_auc_in_company']:.4f} |",
            f"| MAX_BATCH_SIZE=1 answers equal alone | {r['one_per_call_equals_alone']} |",
            f"| seconds for all requests, MAX_BATCH_SIZE={r['max_batch_size']} / 1 | "
            f"{r['seconds_batched']} / {r['seconds_one_per_call']} "
            f"({r['slowdown_one_per_call']}x; the faster of two interleaved runs each) |",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_uri", help="a bundle folder or a production.json pointer")
    parser.add_argument("--titles", type=Path, default=COAID, help="CSV with title,label")
    parser.add_argument("--request-size", type=int, default=16)
    parser.add_argument("--max-batch-size", type=int, default=32, help="the function's default")
    parser.add_argument("--cache-dir", type=Path, default=Path("local/bundle_cache"))
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    titles, labels = read_titles(args.titles)
    result = measure(
        args.model_uri, titles, labels, args.request_size, args.max_batch_size, args.cache_dir
    )
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(result))


if __name__ == "__main__":
    main()
