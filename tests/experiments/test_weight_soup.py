"""The weight soup averages every floating-point tensor and keeps integer buffers as they are."""

from __future__ import annotations

import torch

from experiments.weight_soup import uniform_soup


def test_floats_are_averaged_and_integer_buffers_kept() -> None:
    states = [
        {"weight": torch.tensor([1.0, 3.0]), "position_ids": torch.tensor([0, 1, 2])},
        {"weight": torch.tensor([3.0, 5.0]), "position_ids": torch.tensor([0, 1, 2])},
        {"weight": torch.tensor([5.0, 7.0]), "position_ids": torch.tensor([0, 1, 2])},
    ]
    soup = uniform_soup(states)
    assert torch.equal(soup["weight"], torch.tensor([3.0, 5.0]))
    assert soup["position_ids"].dtype == torch.int64
    assert torch.equal(soup["position_ids"], torch.tensor([0, 1, 2]))
