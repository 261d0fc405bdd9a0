"""Which nodes an int8 model keeps in fp32: a run's fp32 ONNX quantized several ways, each scored
against fp32 on the run's validation split (what a variant is chosen on) and test split (what the
job's gate reads).

    python -m experiments.int8_variants local/runs/<run id> [--splits val,test] [--out F.json]

Variants: every weight MatMul in int8 (the job's default); the feed-forward output projections
in fp32 (`--int8-ffn-output fp32`) in every layer, in the second half of the layers or in the
first half. The data, tokenizer and max length are the run's own.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from export.onnx_export import ffn_output_matmuls, quantize_int8
from export.onnx_logits import logits_and_pooled
from train_job.batching import encode
from train_job.config import TrainConfig
from train_job.data import load_dataset


def variants(fp32: Path, config: dict) -> dict[str, list[str]]:
    """Variant name -> the nodes kept in fp32."""
    ffn = ffn_output_matmuls(fp32, config["intermediate_size"], config["hidden_size"])
    layers = config["num_hidden_layers"]
    half = layers // 2

    def in_layers(first: int, last: int) -> list[str]:
        return [n for n in ffn if any(f"layer.{i}/" in n for i in range(first, last))]

    return {
        "all int8": [],
        "ffn outputs fp32": ffn,
        f"ffn outputs fp32, layers {half}-{layers - 1}": in_layers(half, layers),
        f"ffn outputs fp32, layers 0-{half - 1}": in_layers(0, half),
    }


def agreement_row(
    int8: Path, fp32_logits: dict, encoded: dict, labels: dict, pad_id: int
) -> dict[str, dict[str, float]]:
    row = {}
    for split, ref in fp32_logits.items():
        started = time.time()
        logits = logits_and_pooled(int8, encoded[split].features, pad_id)[0]
        ref_pred, pred = ref.argmax(1), logits.argmax(1)
        row[split] = {
            "agreement": round(float((ref_pred == pred).mean()), 4),
            "drop_points": round(
                float(((ref_pred == labels[split]).mean() - (pred == labels[split]).mean()) * 100),
                2,
            ),
            "seconds": round(time.time() - started, 1),
        }
    return row


def compare(run: Path, splits: list[str]) -> list[dict]:
    from transformers import AutoTokenizer

    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    dataset = load_dataset(cfg)
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    pad_id = tokenizer.pad_token_id or 0
    frames = {split: dataset.splits[split] for split in splits}
    encoded = {
        s: encode(tokenizer, f["text"].tolist(), f["label"], cfg.max_length)
        for s, f in frames.items()
    }
    labels = {s: f["label"].to_numpy() for s, f in frames.items()}
    fp32 = run / "onnx" / "model_fused.onnx"
    config = json.loads((run / "onnx" / "config.json").read_text())
    fp32_logits = {s: logits_and_pooled(fp32, encoded[s].features, pad_id)[0] for s in splits}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, keep in variants(fp32, config).items():
            out_dir = Path(tmp) / str(len(rows))
            out_dir.mkdir()
            int8, _ = quantize_int8(fp32, out_dir, keep_fp32=keep)
            row = {
                "variant": name,
                "fp32_nodes": len(keep),
                "bytes": int8.stat().st_size,
            }
            row.update(agreement_row(int8, fp32_logits, encoded, labels, pad_id))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder: config.json, model/, onnx/")
    parser.add_argument("--splits", default="val,test", help="comma-separated, of train/val/test")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = compare(args.run, args.splits.split(","))
    if args.out:
        args.out.write_text(json.dumps({"run": args.run.name, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
