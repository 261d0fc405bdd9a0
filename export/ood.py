"""Out-of-domain detector: Mahalanobis distance of the pooled features to the training data.

One Gaussian with a shared, shrunk covariance (Ledoit-Wolf) is fitted on the training texts'
pooled features; the out-of-domain score is the squared Mahalanobis distance. The threshold is a
high quantile of the validation scores, so about (1 - quantile) of in-domain texts are flagged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.covariance import LedoitWolf


def fit(train_pooled: np.ndarray) -> dict[str, np.ndarray]:
    estimator = LedoitWolf().fit(train_pooled.astype(np.float64))
    return {
        "mean": estimator.location_.astype(np.float32),
        "precision": estimator.precision_.astype(np.float32),
    }


def distance(pooled: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    centred = pooled - params["mean"]
    return np.einsum("ij,jk,ik->i", centred, params["precision"], centred)


def threshold(val_scores: np.ndarray, quantile: float = 0.98) -> float:
    return float(np.quantile(val_scores, quantile))


def save(params: dict[str, np.ndarray], path: Path) -> Path:
    np.savez(path, **params)
    return path
