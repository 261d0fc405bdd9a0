"""Length-bucketed training batches: every post once per epoch, little padding, and (with labels)
the label mix of the data in every batch even when length and label go together."""

from __future__ import annotations

import random

import numpy as np
import pytest

from train_job.batching import bucketed_batches


def _length_tied_to_label(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Like CONSTRAINT, only more so: fake posts short, real posts long, 40% fake."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(np.int64)
    lengths = np.where(labels == 1, rng.integers(10, 40, n), rng.integers(30, 110, n))
    return lengths, labels


def _fake_share_std(batches: list[list[int]], labels: np.ndarray) -> float:
    return float(np.std([labels[b].mean() for b in batches]))


def _padding_ratio(batches: list[list[int]], lengths: np.ndarray) -> float:
    computed = sum(len(b) * int(lengths[b].max()) for b in batches)
    return computed / int(lengths.sum())


@pytest.mark.parametrize("with_labels", [False, True], ids=["length only", "label mix kept"])
def test_every_post_once_per_epoch(with_labels: bool) -> None:
    lengths, labels = _length_tied_to_label()
    batches = bucketed_batches(lengths, 32, random.Random(1), labels if with_labels else None)
    seen = sorted(i for b in batches for i in b)
    assert seen == list(range(len(lengths)))
    assert max(len(b) for b in batches) <= 33  # a slice of each class, rounding may add one


def test_label_mix_kept_in_every_batch() -> None:
    lengths, labels = _length_tied_to_label()
    plain = bucketed_batches(lengths, 32, random.Random(1))
    mixed = bucketed_batches(lengths, 32, random.Random(1), labels)
    # Plain buckets put the short (fake) posts together: many batches of a single label.
    assert _fake_share_std(plain, labels) > 0.3
    # Kept mix: every batch close to the 40% of the data.
    assert _fake_share_std(mixed, labels) < 0.05
    assert all(0.25 <= labels[b].mean() <= 0.55 for b in mixed)


def test_mixed_batches_still_pad_far_less_than_random_ones() -> None:
    lengths, labels = _length_tied_to_label()
    order = list(range(len(lengths)))
    random.Random(1).shuffle(order)
    shuffled = [order[i : i + 32] for i in range(0, len(order), 32)]
    mixed = bucketed_batches(lengths, 32, random.Random(1), labels)
    assert _padding_ratio(mixed, lengths) < 0.75 * _padding_ratio(shuffled, lengths)


def test_same_rng_same_batches_so_a_resumed_run_sees_the_same_order() -> None:
    lengths, labels = _length_tied_to_label()
    first = bucketed_batches(lengths, 32, random.Random(7), labels)
    again = bucketed_batches(lengths, 32, random.Random(7), labels)
    assert first == again
    assert first != bucketed_batches(lengths, 32, random.Random(8), labels)


def test_cuda_batches_are_padded_to_a_multiple_of_8_and_cpu_ones_to_their_longest() -> None:
    import torch

    from train_job.batching import Encoded, collate, pad_multiple

    rows = [[101, 7, 102], [101, 7, 8, 9, 10, 102]]
    enc = Encoded(
        {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]},
        np.array([0, 1]),
        np.array([3, 6]),
        np.array([3, 6]),
    )
    cpu = collate(enc, [0, 1], pad_id=0, multiple=pad_multiple(torch.device("cpu")))
    assert cpu["input_ids"].shape == (2, 6)
    cuda = collate(enc, [0, 1], pad_id=0, multiple=pad_multiple(torch.device("cuda")))
    assert cuda["input_ids"].shape == (2, 8)
    assert cuda["attention_mask"][:, 6:].sum() == 0  # the extra columns are padding
    assert cuda["input_ids"][1, :6].tolist() == rows[1]
