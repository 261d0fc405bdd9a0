"""The out-of-domain detector the export fits, and the score serving computes from its file."""

from __future__ import annotations

import numpy as np
import pytest

from export import ood
from serving_core.model import OodDetector


def _features(rng: np.random.Generator, n: int, centre: np.ndarray) -> np.ndarray:
    # Norms spread over a decade, as pooled features of short and long texts are.
    directions = centre + 0.3 * rng.standard_normal((n, centre.size))
    return directions * rng.uniform(0.5, 5.0, size=(n, 1))


def test_serving_scores_a_bundle_as_the_export_measured_it() -> None:
    rng = np.random.default_rng(0)
    centre = rng.standard_normal(16)
    params = ood.fit(_features(rng, 500, centre))
    texts = _features(rng, 50, rng.standard_normal(16))
    detector = OodDetector(ood.METHOD, 1.0, params)
    served = detector.ood_scores(np.zeros((50, 2)), texts.astype(np.float32))
    assert served == pytest.approx(ood.distance(texts, params), rel=1e-4)


def test_the_score_ignores_the_length_of_the_features_and_not_their_direction() -> None:
    rng = np.random.default_rng(1)
    centre = rng.standard_normal(16)
    params = ood.fit(_features(rng, 500, centre))
    inside = centre[None, :]
    assert ood.distance(inside, params) == pytest.approx(ood.distance(7.0 * inside, params))
    elsewhere = -centre[None, :]
    assert ood.distance(elsewhere, params)[0] > 10 * ood.distance(inside, params)[0]


def test_the_threshold_flags_the_validation_share_it_names() -> None:
    scores = np.arange(1000, dtype=float)
    assert np.mean(scores >= ood.threshold(scores)) == pytest.approx(1 - ood.QUANTILE, abs=2e-3)


def test_the_trust_report_scores_as_the_export_fitted() -> None:
    from train_job.trust_eval import BundleScorer

    rng = np.random.default_rng(2)
    params = ood.fit(_features(rng, 500, rng.standard_normal(16)))
    scorer = BundleScorer.__new__(BundleScorer)  # only the detector's part of a bundle
    scorer.manifest = {"ood": {"method": ood.METHOD}}
    scorer.ood = params
    texts = _features(rng, 20, rng.standard_normal(16))
    assert scorer._ood_scores(texts) == pytest.approx(ood.distance(texts, params), rel=1e-5)
