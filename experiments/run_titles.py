"""Score a title file through a run's ONNX models when the run left no bundle (the int8 gate
refused it): the served rule (the run's validation temperature and threshold, int8 and fp32), the
metrics the trust report gives a bundle on the same file (train_job/source_eval.py).

    python -m experiments.run_titles local/runs/<run id> [--titles FILE]   (default: CoAID)

A bundle is scored by `python -m train_job.trust_eval BUNDLE --cross-source FILE` instead. A run
calibrated by an isotonic map (`--calibration isotonic`) is refused: only its bundle keeps the map.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from export.onnx_logits import logits_and_pooled
from train_job.batching import encode
from train_job.evaluate import softmax
from train_job.source_eval import source_metrics

ONNX = {"int8": "model_fused_int8.onnx", "fp32": "model_fused.onnx"}


def score_run(run: Path, titles: Path, max_length: int) -> dict:
    from transformers import AutoTokenizer

    metrics = json.loads((run / "metrics.json").read_text())
    if metrics["int8"]["val"].get("calibration", "temperature") != "temperature":
        raise SystemExit(
            f"error: {run} is calibrated by a map that only its bundle keeps; score the bundle "
            "with python -m train_job.trust_eval BUNDLE --cross-source FILE"
        )
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    frame = pd.read_csv(titles, dtype=str, keep_default_na=False)
    labels = (frame["label"].str.strip().str.lower() == "fake").astype(int).to_numpy()
    enc = encode(tokenizer, frame["title"].tolist(), labels, max_length)
    out = {}
    for precision, name in ONNX.items():
        logits, _ = logits_and_pooled(
            run / "onnx" / name, enc.features, tokenizer.pad_token_id or 0
        )
        val = metrics[precision]["val"]
        p_fake = softmax(logits, val["temperature"])[:, 1]
        out[precision] = source_metrics(p_fake, labels, val["threshold"])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder: metrics.json, model/, onnx/")
    parser.add_argument(
        "--titles", type=Path, default=Path("data/coaid-2020-05/coaid_2020-05_titles.csv")
    )
    parser.add_argument("--max-length", type=int, default=64, help="the run's max tokens")
    args = parser.parse_args(argv)
    print(json.dumps(score_run(args.run, args.titles, args.max_length), indent=2))


if __name__ == "__main__":
    main()
