"""Loss weights that take each source's label prior out of training (--source-balance)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from train_job.batching import encode
from train_job.epoch_inputs import EpochInputs
from train_job.losses import source_balance_weights, train_step

# Source "rumours" is 3/4 fake, "wire" 1/4 fake and twice as large.
SOURCES = ["rumours"] * 4 + ["wire"] * 8
LABELS = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0]  # rumours, then wire


def _totals(weights: np.ndarray) -> pd.Series:
    frame = pd.DataFrame({"source": SOURCES, "label": LABELS, "w": weights})
    return frame.groupby(["source", "label"])["w"].sum()


def test_off_means_no_weights() -> None:
    assert source_balance_weights(SOURCES, LABELS, "off") is None


def test_class_balance_evens_the_labels_within_each_source_and_keeps_its_share() -> None:
    weights = source_balance_weights(SOURCES, LABELS, "class")
    totals = _totals(weights)
    assert totals["rumours", 0] == pytest.approx(totals["rumours", 1])
    assert totals["wire", 0] == pytest.approx(totals["wire", 1])
    # The larger source still weighs twice as much: only its label prior is gone.
    assert totals["wire"].sum() == pytest.approx(2 * totals["rumours"].sum())
    assert weights.mean() == pytest.approx(1.0)


def test_source_class_balance_gives_every_cell_the_same_weight() -> None:
    weights = source_balance_weights(SOURCES, LABELS, "source-class")
    assert np.allclose(_totals(weights).to_numpy(), len(LABELS) / 4)
    assert weights.mean() == pytest.approx(1.0)


def test_a_source_with_one_label_is_not_reweighted() -> None:
    # Source "a" has fake rows only: with one label there is no prior to even out, so its rows
    # weigh what source "b"'s rows weigh once "b" is balanced (one fake, one real).
    weights = source_balance_weights(["a", "a", "b", "b"], [1, 1, 0, 1], "class")
    assert np.allclose(weights, 1.0)


class _Linear(nn.Module):
    """Logits from a token-count feature: enough to see which rows the loss listens to."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(2))

    def forward(self, input_ids, attention_mask, **_):
        length = attention_mask.sum(dim=1, keepdim=True).float()
        return type("Out", (), {"logits": length * self.scale})()


class _Tokenizer:
    pad_token_id = 0

    def __call__(self, texts, **_):
        ids = [[1] * len(t.split()) for t in texts]
        return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]}


def _step_loss(row_weights: np.ndarray | None) -> float:
    texts = ["a b c", "a b", "a", "a b c d"]
    labels = np.array([1, 0, 1, 0])
    enc = encode(_Tokenizer(), texts, labels, 16)
    model = _Linear()
    inputs = EpochInputs(enc=enc, row_weights=row_weights)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_step(
        model,
        enc,
        [0, 1, 2, 3],
        0,
        torch.device("cpu"),
        nn.CrossEntropyLoss(),
        optimizer,
        inputs=inputs,
    )
    return float(loss)


def test_unit_weights_give_the_plain_loss_and_other_weights_change_it() -> None:
    plain = _step_loss(None)
    assert _step_loss(np.ones(4)) == pytest.approx(plain)
    # Zero weights on every row leave no loss at all: the weights reach the loss.
    assert _step_loss(np.zeros(4)) == pytest.approx(0.0)
