"""The bundle's manifest.json, as export/manifest.schema.json (beside this file) describes it.

It takes plain values, so whoever trains the model (train_job) passes what it knows and export
needs nothing of the training code. `files` is added last, by bundle.write_bundle, which also
validates the whole manifest against the schema.
"""

from __future__ import annotations

import time
from pathlib import Path

from export.bundle import new_version, package_versions


def bundle_manifest(
    *,
    int8_model: Path,
    quantization: dict,
    labels: list[str],
    max_length: int,
    base_model: str,
    temperature: float,
    calibration_map: dict | None = None,
    threshold: float,
    ood: dict | None,
    dataset: dict,
    metrics: dict,
    training_config: dict,
    training: dict,
    run_id: str,
) -> dict:
    """Every manifest field but `files` and `trust`. `training` is the loop's result with its
    per-epoch `history`, which goes last; `dataset` is the data's fingerprint and row counts;
    `calibration_map` ({"margins", "p_fake"}) replaces the temperature when given."""
    import onnx

    graph = onnx.load(str(int8_model), load_external_data=False).graph
    return {
        "schema_version": 1,
        "version": new_version(int8_model),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "labels": list(labels),
        "positive_label": "fake",
        "max_length": max_length,
        "base_model": base_model,
        "model_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "onnx": {
            "inputs": [i.name for i in graph.input],
            "outputs": [o.name for o in graph.output],
            "quantization": quantization,
        },
        "calibration": {"temperature": temperature}
        | ({"map": calibration_map} if calibration_map else {}),
        "decision": {
            "threshold": threshold,
            "objective": "balanced (val macro-F1, one-SE rule)",
        },
        "ood": ood,
        "baseline_file": "baseline.json",
        "report_file": "report.png",
        "dataset": dataset,
        "metrics": metrics,
        "training_config": training_config,
        "training": {k: v for k, v in training.items() if k != "history"}
        | {"history": training["history"]},
        "packages": package_versions(),
        "run_id": run_id,
    }
