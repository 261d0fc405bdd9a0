"""One optimisation step and its loss: cross-entropy on the labels, and by weight the consistency
term on perturbed twins, the distillation term on a teacher's logits and the hidden-state
transfer term."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from train_job.adversary import Adversary
from train_job.batching import Encoded, collate, length_groups, pad_multiple, to_device
from train_job.config import TrainConfig
from train_job.device import autocast_for
from train_job.epoch_inputs import EpochInputs
from train_job.source_heads import SourceHeads


@dataclass
class LossWeights:
    consistency: float = 0.0  # KL(post || twin), see train_step
    distill: float = 0.0  # share of the loss from the teacher
    temperature: float = 1.0  # of the distillation targets
    hidden: float = 0.0  # hidden-state transfer, see relation_loss

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> LossWeights:
        distill = cfg.distill_weight if cfg.teacher else 0.0
        hidden = cfg.teacher_hidden if cfg.teacher else 0.0
        return cls(cfg.consistency_weight, distill, cfg.distill_temperature, hidden)


def train_step(
    model: nn.Module,
    enc: Encoded,
    idx: list[int],
    pad_id: int,
    device: torch.device,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    inputs: EpochInputs | None = None,
    weights: LossWeights | None = None,
    precision: str = "auto",
    adversary: Adversary | None = None,
    source_heads: SourceHeads | None = None,
    max_groups: int = 1,
) -> torch.Tensor:
    """One optimisation step on the posts `idx`; returns the loss as a tensor (not synced).

    With `inputs` carrying twins, the twins of `idx` run in the same forward pass, and
    KL(original || twin) (the original's prediction held fixed, as in UDA, Xie et al. 2020) is
    added with weight `weights.consistency`. With teacher logits, `weights.distill` of the label
    loss is replaced by the distillation loss (see train_job/distill.py). With an `adversary`,
    its source loss joins, reversed for the encoder (train_job/adversary.py). With `source_heads`,
    each row is scored by its own source's head (train_job/source_heads.py). With `max_groups`
    above 1 the forward pass runs in up to that many groups of similar length (`forward_rows`)."""
    weights = weights or LossWeights()
    batch_rows = [(enc, i) for i in idx]
    twin_idx: list[int] = []
    if inputs is not None and inputs.twins is not None and inputs.has_twin is not None:
        twin_idx = [i for i in idx if inputs.has_twin[i]]
        batch_rows += [(inputs.twins, i) for i in twin_idx]  # after the rows, as read below
    labels = to_device({"labels": torch.as_tensor(enc.labels[idx])}, device)["labels"]
    hidden = weights.hidden > 0 and inputs is not None and inputs.teacher_states is not None
    if adversary is not None or source_heads is not None:
        max_groups = 1  # their feature taps keep the label head's input of one forward pass
    logits, first_states = forward_rows(
        model, batch_rows, pad_id, device, precision, max_groups, hidden
    )
    if source_heads is not None:  # the twins after the rows keep the shared head
        logits = torch.cat([source_heads.logits(logits[: len(idx)], idx), logits[len(idx) :]])
    if inputs is not None and inputs.row_weights is not None:
        smoothing = getattr(loss_fn, "label_smoothing", 0.0)
        rows = F.cross_entropy(
            logits[: len(idx)], labels, label_smoothing=smoothing, reduction="none"
        )
        weights_of_rows = torch.as_tensor(inputs.row_weights[idx], device=rows.device)
        loss = (rows * weights_of_rows.to(rows.dtype)).mean()
    else:
        loss = loss_fn(logits[: len(idx)], labels)
    if inputs is not None and inputs.teacher is not None and weights.distill > 0:
        soft = distill_loss(logits[: len(idx)], inputs.teacher[idx], weights.temperature)
        loss = (1 - weights.distill) * loss + weights.distill * soft
    if hidden:
        states = first_states[: len(idx)]
        loss = loss + weights.hidden * relation_loss(states, inputs.teacher_states[idx])
    if twin_idx and inputs.twin_teacher is not None:
        soft = distill_loss(logits[len(idx) :], inputs.twin_teacher[twin_idx], weights.temperature)
        loss = loss + weights.distill * soft
    elif twin_idx:
        rows = torch.as_tensor([k for k, i in enumerate(idx) if inputs.has_twin[i]], device=device)
        target = F.log_softmax(logits[rows].detach(), dim=-1)
        twin = F.log_softmax(logits[len(idx) :], dim=-1)
        kl = F.kl_div(twin, target, log_target=True, reduction="batchmean")
        loss = loss + weights.consistency * kl
    if adversary is not None:
        loss = loss + adversary.loss(labels, idx)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if adversary is not None:
        adversary.step()
    if source_heads is not None:
        source_heads.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def forward_rows(
    model: nn.Module,
    rows: list[tuple[Encoded, int]],
    pad_id: int,
    device: torch.device,
    precision: str,
    max_groups: int = 1,
    hidden: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits of `rows` (each an encoded split and a row of it) in their order, and with `hidden`
    the last layer's first-token states. With `max_groups` above 1 the rows run in up to that many
    groups of similar length, each padded to its own longest (batching.length_groups): a batch of
    headlines and articles pads most headlines to the articles' length otherwise."""
    multiple = pad_multiple(device)
    if max_groups > 1:
        lengths = [int(e.lengths[i]) for e, i in rows]
        groups = [sorted(g) for g in length_groups(lengths, max_groups, GROUP_COST * len(rows))]
    else:
        groups = [list(range(len(rows)))]
    logits, states, order = [], [], []
    for group in groups:
        parts: dict[int, tuple[Encoded, list[int]]] = {}
        for k in group:  # rows of one split stay together, in order, as collate takes them
            e, i = rows[k]
            parts.setdefault(id(e), (e, []))[1].append(i)
        (first, first_idx), *extra = parts.values()
        batch = collate(first, first_idx, pad_id, multiple, extra[0] if extra else None)
        with autocast_for(device, precision):
            out = model(**to_device(batch, device), output_hidden_states=hidden)
        logits.append(out.logits.float())
        if hidden:
            states.append(out.hidden_states[-1][:, 0].float())
        order += [k for part in parts.values() for k in group if rows[k][0] is part[0]]
    if order == list(range(len(rows))):
        return logits[0], states[0] if hidden else None
    back = torch.as_tensor(np.argsort(order), device=device)
    return torch.cat(logits)[back], torch.cat(states)[back] if hidden else None


# What one more forward pass costs a batch, in padded tokens per row: a group is split off only
# where it saves more than that, so batches already of one length (--length-buckets) stay whole.
GROUP_COST = 4


def source_balance_weights(sources, labels, mode: str) -> np.ndarray | None:
    """Per-row loss weights, mean 1, that take the label prior out of each source (None: off).

    "class": within each source, the fake rows and the real rows carry the same total weight and
    the source keeps its share of the rows. A source whose rows are mostly fake (the rumours) then
    no longer teaches that its style or topic means fake. "source-class": every (source, class)
    cell carries the same total weight, so small sources count as much as large ones."""
    if mode == "off":
        return None
    frame = pd.DataFrame({"source": np.asarray(sources), "label": np.asarray(labels)})
    cell = frame.groupby(["source", "label"])["label"].transform("size").to_numpy(float)
    if mode == "class":
        source_rows = frame.groupby("source")["label"].transform("size").to_numpy(float)
        classes = frame.groupby("source")["label"].transform("nunique").to_numpy(float)
        weights = source_rows / (classes * cell)
    elif mode == "source-class":
        weights = 1.0 / cell
    else:
        raise ValueError(f"unknown source balance {mode!r}")
    return weights / weights.mean()


def distill_loss(student: torch.Tensor, teacher: np.ndarray, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), averaged over rows (Hinton et al., 2015)."""
    target = F.log_softmax(torch.as_tensor(teacher, device=student.device) / temperature, -1)
    student_log = F.log_softmax(student / temperature, dim=-1)
    kl = F.kl_div(student_log, target, log_target=True, reduction="batchmean")
    return kl * temperature**2


def relation_loss(student: torch.Tensor, teacher: np.ndarray) -> torch.Tensor:
    """Similarity-preserving transfer (Tung & Mori, 2019): the mean squared difference between
    the batch's cosine-similarity matrices of the student's and the teacher's states. It needs no
    map between their widths, and it teaches which posts the teacher puts close together, the
    geometry its ranking of unseen text comes from."""
    s = F.normalize(student, dim=-1)
    t = F.normalize(torch.as_tensor(teacher, device=student.device, dtype=s.dtype), dim=-1)
    return F.mse_loss(s @ s.T, t @ t.T)
