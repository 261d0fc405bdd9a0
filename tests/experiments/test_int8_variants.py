"""experiments/int8_variants.py: a run's fp32 model quantized several ways and scored against
fp32; its all-int8 variant is the job's own int8 model."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.int8_variants import compare
from export.onnx_logits import logits_and_pooled
from train_job.batching import encode
from train_job.config import TrainConfig
from train_job.data import load_dataset


def test_variants_keep_the_named_nodes_and_all_int8_is_the_jobs_model(tiny_run: dict) -> None:
    from transformers import AutoTokenizer

    run = Path(tiny_run["run_dir"])
    rows = {row["variant"]: row for row in compare(run, ["val"])}
    assert [row["fp32_nodes"] for row in rows.values()] == [0, 2, 1, 1]  # two layers
    assert rows["ffn outputs fp32"]["bytes"] > rows["all int8"]["bytes"]
    # The job's int8 model, scored the same way, agrees with fp32 exactly as often.
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    val = load_dataset(cfg).splits["val"]
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    features = encode(tokenizer, val["text"].tolist(), val["label"], cfg.max_length).features
    fp32 = logits_and_pooled(run / "onnx" / "model_fused.onnx", features, 0)[0].argmax(1)
    int8 = logits_and_pooled(run / "onnx" / "model_fused_int8.onnx", features, 0)[0].argmax(1)
    assert rows["all int8"]["val"]["agreement"] == round(float((fp32 == int8).mean()), 4)
