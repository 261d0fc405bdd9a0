"""Crafted prediction-log rows that follow a known baseline, so the log and monitoring are tested
and measured without a model."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

VERSION_A = "20240101T000000Z-aaaaaa"
VERSION_B = "20240201T000000Z-bbbbbb"
DAY = datetime(2024, 3, 1, tzinfo=UTC)

BASELINE: dict[str, Any] = {
    "score_bins": [i / 10 for i in range(11)],
    "score_hist": [0.30, 0.10, 0.05, 0.03, 0.02, 0.02, 0.03, 0.05, 0.10, 0.30],
    "token_length_bins": [0, 16, 32, 64, 128, 256, 512, 1e9],
    "token_length_hist": [0.05, 0.25, 0.40, 0.20, 0.07, 0.03, 0.0],
    "label_ratio": {"real": 0.52, "fake": 0.48},
    "truncation_rate": 0.1,
    "n": 2140,
}
MAX_LENGTH = 128


def _sample(rng: random.Random, edges: list[float], hist: list[float], cap: float) -> float:
    i = rng.choices(range(len(hist)), weights=hist)[0]
    return rng.uniform(edges[i], min(edges[i + 1], cap))


def make_rows(
    n: int,
    *,
    version: str = VERSION_A,
    start: datetime = DAY,
    span: timedelta = timedelta(hours=6),
    seed: int = 0,
    shifted: bool = False,
    per_request: int = 2,
    request_prefix: str = "req",
) -> list[dict[str, Any]]:
    """Rows as the function hands them to the logger. Unshifted rows follow BASELINE; shifted
    ones are long texts (mostly truncated) with scores piled up in the middle."""
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        request, index = divmod(k, per_request)
        if shifted:
            tokens = int(rng.uniform(300, 900))
            score = rng.uniform(0.4, 0.7)
        else:
            tokens = int(
                _sample(rng, BASELINE["token_length_bins"], BASELINE["token_length_hist"], 600)
            )
            score = _sample(rng, BASELINE["score_bins"], BASELINE["score_hist"], 1.0)
        text = f"{request_prefix}-{seed}-{k} " + "w " * tokens
        in_domain = None if version == VERSION_B else (rng.random() > (0.6 if shifted else 0.05))
        rows.append(
            {
                "request_id": f"{request_prefix}-{seed}-{request}",
                "instance_index": index,
                "ts": (start + span * (request * per_request / max(n, 1))).isoformat(),
                "model_version": version,
                "label": "fake" if score >= 0.5 else "real",
                "fake_probability": score,
                "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "char_count": len(text),
                "token_count": tokens,
                "truncated": tokens > MAX_LENGTH,
                "latency_ms": round(rng.uniform(2.0, 20.0), 3),
                "cold_start": request == 0,
                "ood_score": None if in_domain is None else rng.uniform(0, 100),
                "in_domain": in_domain,
                "text": text,
                # The server's key: unique per row (deterministic here, so tests can resend).
                "row_id": f"{request_prefix}-{seed}-{k}",
                "trace_id": None,
                "nonfinite_columns": None,
            }
        )
    return rows
