"""Token ids and batches: a split encoded once, length-bucketed batches, dynamic padding, and the
logits of every post scored in such batches."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from train_job.device import autocast_for


@dataclass
class Encoded:
    """Token ids of one split, unpadded."""

    features: dict[str, list[list[int]]]
    labels: np.ndarray
    lengths: np.ndarray  # tokens after truncation
    full_lengths: np.ndarray  # tokens before truncation


def encode(tokenizer, texts: list[str], labels: np.ndarray, max_length: int) -> Encoded:
    full = tokenizer(texts, truncation=False, add_special_tokens=True)["input_ids"]
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return Encoded(
        features={k: enc[k] for k in keys},
        labels=np.asarray(labels, dtype=np.int64),
        lengths=np.array([len(ids) for ids in enc["input_ids"]]),
        full_lengths=np.array([len(ids) for ids in full]),
    )


def bucketed_batches(
    lengths: np.ndarray,
    batch_size: int,
    rng: random.Random | None,
    labels: np.ndarray | None = None,
) -> list[list[int]]:
    """Batches of similar length. With rng: shuffled inside length buckets and across batches,
    so every epoch sees a new order but padding stays small.

    With labels too, every batch keeps the chunk's label mix: each class is sorted by length on
    its own and batch k takes the k-th slice of each. On CONSTRAINT fake posts are shorter than
    real ones (median 27 vs 47 tokens), so plain length buckets make batches of mostly one label,
    which pushes the classifier's bias back and forth from step to step
    (tests/train_job/test_batches.py). The price is a little more padding."""
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    chunk = batch_size * 50  # sort within chunks: still random across the epoch
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        if labels is None:
            part.sort(key=lambda i: lengths[i])
            batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
            continue
        n_batches = -(-len(part) // batch_size)
        slices: list[list[int]] = [[] for _ in range(n_batches)]
        for label in np.unique(labels[part]):
            same = sorted((i for i in part if labels[i] == label), key=lambda i: lengths[i])
            for k in range(n_batches):
                slices[k] += same[k * len(same) // n_batches : (k + 1) * len(same) // n_batches]
        batches += [b for b in slices if b]
    rng.shuffle(batches)
    return batches


def length_groups(lengths: list[int], max_groups: int, group_cost: float = 0.0) -> list[list[int]]:
    """The positions of `lengths` in at most `max_groups` groups of similar length, shortest
    first, for a batch that is padded and run one group at a time: the split of the sorted
    lengths with the fewest padded tokens (each group's size times its longest), plus
    `group_cost` tokens for every group after the first, found by dynamic programming.

    Each row's output is the same whichever rows share its padding (the attention mask hides the
    pads and nothing mixes rows), so the batch's loss and gradient are those of the batch padded
    as one, at the cost of only the tokens each group needs."""
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    ordered = [lengths[k] for k in order]
    n = len(order)
    # best[g][i]: fewest tokens for the rows order[i:] in g groups; cut[g][i]: where its first ends
    best = [[0.0] * (n + 1)] + [[float("inf")] * (n + 1) for _ in range(max_groups)]
    cut = [[n] * (n + 1) for _ in range(max_groups + 1)]
    for g in range(1, max_groups + 1):
        for i in range(n - 1, -1, -1):
            for j in range(i + 1, n + 1) if g > 1 else (n,):
                rest = best[g - 1][j] + (group_cost if j < n else 0.0)
                cost = (j - i) * ordered[j - 1] + rest
                if cost < best[g][i]:
                    best[g][i], cut[g][i] = cost, j
    groups, i = [], 0
    g = min(range(1, max_groups + 1), key=lambda k: (best[k][0], k)) if n else 0
    while i < n:
        j = cut[g][i]
        groups.append(order[i:j])
        i, g = j, g - 1
    return groups


def padded_width(enc: Encoded, idx: list[int], multiple: int = 1) -> int:
    """The longest of the posts `idx`, rounded up to `multiple`."""
    width = max(int(enc.lengths[i]) for i in idx)
    return -(-width // multiple) * multiple


def collate(
    enc: Encoded,
    idx: list[int],
    pad_id: int,
    multiple: int = 1,
    extra: tuple[Encoded, list[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """Pads the posts `idx` (then the `extra` rows, if any) to their longest, rounded up to
    `multiple`. On CUDA the job rounds to 8: new tensor shapes cost extra on first use there
    (experiments/gpu.md), and multiples of 8 suit the tensor cores."""
    parts = [(enc, idx)] + ([extra] if extra and extra[1] else [])
    width = max(padded_width(e, rows, multiple) for e, rows in parts)
    batch = {}
    for key in enc.features:
        pad = pad_id if key == "input_ids" else 0
        rows = [e.features[key][i] for e, chosen in parts for i in chosen]
        batch[key] = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
    return batch


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    enc: Encoded,
    pad_id: int,
    device: torch.device,
    batch_size: int = 64,
    precision: str = "auto",
) -> np.ndarray:
    model.eval()
    out = np.zeros((len(enc.labels), 2), dtype=np.float32)
    for idx in bucketed_batches(enc.lengths, batch_size, rng=None):
        batch = to_device(collate(enc, idx, pad_id, pad_multiple(device)), device)
        with autocast_for(device, precision):
            out[idx] = model(**batch).logits.float().cpu().numpy()
    return out


def pad_multiple(device: torch.device) -> int:
    return 8 if device.type == "cuda" else 1  # why: see collate


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type != "cuda":
        return batch
    # Pinned host memory lets the copy run alongside the GPU's work on the last step.
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
