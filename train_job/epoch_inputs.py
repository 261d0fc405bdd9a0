"""What one epoch trains on: the posts, perturbed afresh (train_job/augment.py), in consistency
mode their perturbed twins, and with a teacher (train_job/distill.py) its logits as targets.

With a teacher, its answers can also be taught on text unlike the posts: `teacher_headlines` of
the posts join their batch cut to their first sentence, each with the teacher's logits on that cut
as its only target. Headlines from other sources look like none of CONSTRAINT's real posts; there
the student learns how the teacher ranks them, not a label the cut may no longer carry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from train_job.augment import first_sentence, perturb
from train_job.batching import Encoded, encode
from train_job.config import TrainConfig


@dataclass
class TeacherLogits:
    """The teacher's logits [n, 2] on the training posts and, when asked for, on their first
    sentences and its last-layer first-token states [n, hidden] on the posts
    (train_job/distill.py)."""

    posts: np.ndarray
    first_sentences: np.ndarray | None = None
    states: np.ndarray | None = None


@dataclass
class EpochInputs:
    """What one epoch trains on: the posts, in consistency mode their perturbed twins, and with a
    teacher its logits on each post (as written: a perturbed post keeps its original's target).
    With `twin_teacher`, the twins are the posts' first sentences, taught the teacher's logits on
    them instead of the consistency term."""

    enc: Encoded
    twins: Encoded | None = None
    has_twin: np.ndarray | None = None  # bool per post: its twin differs from it
    teacher: np.ndarray | None = None  # [n, 2] logits
    twin_teacher: np.ndarray | None = None  # [n, 2] logits on each post's twin
    teacher_states: np.ndarray | None = None  # [n, hidden] on each post as written
    row_weights: np.ndarray | None = None  # [n] label-loss weight per post (mean 1)


def epoch_inputs(
    cfg: TrainConfig,
    tokenizer,
    texts: list[str],
    labels,
    epoch: int,
    teacher: TeacherLogits | None = None,
) -> EpochInputs:
    inputs = _epoch_inputs(cfg, tokenizer, texts, labels, epoch, teacher)
    inputs.teacher_states = teacher.states if teacher is not None else None
    return inputs


def _epoch_inputs(
    cfg: TrainConfig,
    tokenizer,
    texts: list[str],
    labels,
    epoch: int,
    teacher: TeacherLogits | None,
) -> EpochInputs:
    perturbed = perturb(texts, cfg, epoch)
    posts_teacher = teacher.posts if teacher is not None else None
    if teacher is not None and teacher.first_sentences is not None:
        rng = random.Random(f"teacher-headlines/{cfg.seed}/{epoch}")
        cuts = [first_sentence(text) for text in texts]
        drawn = [rng.random() < cfg.teacher_headlines for _ in texts]
        return EpochInputs(
            enc=encode(tokenizer, perturbed, labels, cfg.max_length),
            twins=encode(tokenizer, cuts, labels, cfg.max_length),
            has_twin=np.array([d and c != t for d, c, t in zip(drawn, cuts, texts, strict=True)]),
            teacher=posts_teacher,
            twin_teacher=teacher.first_sentences,
        )
    if cfg.consistency_weight <= 0:
        return EpochInputs(
            encode(tokenizer, perturbed, labels, cfg.max_length), teacher=posts_teacher
        )
    return EpochInputs(
        enc=encode(tokenizer, texts, labels, cfg.max_length),
        twins=encode(tokenizer, perturbed, labels, cfg.max_length),
        has_twin=np.array([a != b for a, b in zip(texts, perturbed, strict=True)]),
        teacher=posts_teacher,
    )
