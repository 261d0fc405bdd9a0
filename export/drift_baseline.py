"""Baseline distributions that monitoring compares live traffic with (PSI)."""

from __future__ import annotations

import numpy as np

SCORE_BINS = [round(x, 1) for x in np.linspace(0, 1, 11)]
# Token-count edges; the last bin is open-ended (1e9 stands for +inf in JSON).
TOKEN_LENGTH_BINS = [0, 16, 32, 48, 64, 96, 128, 256, 512, 1e9]


def _proportions(values: np.ndarray, edges: list[float]) -> list[float]:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1] - 1e-9), bins=edges)
    return (counts / max(counts.sum(), 1)).round(6).tolist()


def build_baseline(
    p_fake: np.ndarray, token_counts: np.ndarray, threshold: float, max_length: int
) -> dict:
    fake_share = float((p_fake >= threshold).mean())
    return {
        "score_bins": SCORE_BINS,
        "score_hist": _proportions(p_fake, SCORE_BINS),
        "token_length_bins": TOKEN_LENGTH_BINS,
        "token_length_hist": _proportions(token_counts, TOKEN_LENGTH_BINS),
        "label_ratio": {"real": round(1 - fake_share, 6), "fake": round(fake_share, 6)},
        "truncation_rate": float((token_counts > max_length).mean()),
        "n": len(p_fake),
    }
