"""The CoAID confident-error share counts only real titles answered fake while in domain."""

from __future__ import annotations

import numpy as np

from experiments.ood_quantile import real_called_fake_in_domain


def test_only_real_titles_called_fake_inside_the_threshold_count() -> None:
    distances = np.array([1.0, 1.0, 9.0, 1.0, 1.0])
    p_fake = np.array([0.9, 0.2, 0.9, 0.9, 0.9])
    is_fake = np.array([False, False, False, False, True])
    # Real titles: 0 (fake, in domain: counts), 1 (answered real), 2 (flagged out of domain),
    # 3 (counts). The fake title 4 is a right answer.
    assert real_called_fake_in_domain(distances, p_fake, is_fake, threshold=5.0, cut=0.5) == 0.5
    assert real_called_fake_in_domain(distances, p_fake, is_fake, threshold=0.5, cut=0.5) == 0.0
