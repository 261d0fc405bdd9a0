"""Logits (and pooled features) of token ids from an ONNX model, in length-sorted batches
padded only to their longest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def logits_and_pooled(
    onnx_path: Path,
    features: dict[str, list[list[int]]],
    pad_id: int = 0,
    batch_size: int = 64,
    threads: int = 0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Returns (logits [n, 2], pooled [n, hidden] or None if the graph has no such output)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # 0 = OMP_NUM_THREADS when set (jobs sharing a machine set it), else one thread per core.
    options.intra_op_num_threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0)
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    ids = features["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    logits = np.zeros((len(ids), 2), dtype=np.float32)
    pooled = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(ids[i]) for i in idx)
        feed = {}
        for name in wanted:
            rows = features[name]
            pad = pad_id if name == "input_ids" else 0
            feed[name] = np.array(
                [rows[i] + [pad] * (width - len(rows[i])) for i in idx], dtype=np.int64
            )
        result = dict(zip(outputs, session.run(outputs, feed), strict=True))
        logits[idx] = result["logits"]
        if "pooled" in result:
            if pooled is None:
                pooled = np.zeros((len(ids), result["pooled"].shape[1]), dtype=np.float32)
            pooled[idx] = result["pooled"]
    return logits, pooled
