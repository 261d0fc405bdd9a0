"""Train stage: a plain PyTorch loop, readable in one sitting.

`train` reads as a table of contents:

1. inputs: validation token ids once; the training posts perturbed afresh every epoch;
2. optimizer and schedule: AdamW, linear warm-up and decay, optional layer-wise lr decay;
3. resume after the last finished epoch when the run already has a checkpoint (Cloud Run retries
   a failed task with the same execution id);
4. each epoch: train on length-bucketed, dynamically padded batches, score validation, keep the
   best epoch, update the weight average, write a checkpoint;
5. the result: the best epoch's weights, or the epoch average when it is at least as good.

Invariance to links and user handles (the behavioural tests ask that adding either does not flip a
confident label) is taught in one of two ways, both drawn afresh every epoch:

- replace (consistency weight 0): a share of the posts is trained on in perturbed form;
- consistency (weight > 0): every post is trained on as written; a perturbed twin of a share of
  them joins the same batch, and a KL term pulls its prediction towards the original's. The label
  loss then sees the data's own link and handle shares, and the twin teaches the invariance.

With a teacher (train_job/distill.py), its answers can also be taught on text unlike the posts:
`teacher_headlines` of the posts join their batch cut to a headline, each with the teacher's
logits on that headline as its only target. Headlines from other sources look like none of
CONSTRAINT's real posts; there the student learns how the teacher ranks them, not a label the
cut may no longer carry.

Matrices run in bf16 autocast where the device computes bf16 natively (a GPU, or a CPU with
AVX512-BF16 or AMX: 1.4-1.5x the fp32 step on 2 such cores), unless `precision` is fp32.
"""

from __future__ import annotations

import json
import logging
import random
import re
import string
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from export.store import Store
from train_job.config import TrainConfig
from train_job.data import Dataset

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "checkpoint/state.pt"
BEST_MODEL_PREFIX = "checkpoint/best_model"


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


# --- perturbations for invariance ----------------------------------------------------------------

_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"@\w+")


def _toggle(texts: list[str], rate: float, rng: random.Random, pattern: re.Pattern, add):
    """In `rate` of the posts: remove every match of `pattern` if there is one, else add one."""
    out = []
    for text in texts:
        if rng.random() < rate:
            text = " ".join(pattern.sub(" ", text).split()) if pattern.search(text) else add(text)
        out.append(text)
    return out


_CODE_CHARS = string.ascii_letters + string.digits


def _random_link(rng: random.Random) -> str:
    """A link as a tweet carries one: a t.co short link with a fresh 10-character code, so that
    without placeholders the model meets a new code each time, as it will when serving."""
    return "https://t.co/" + "".join(rng.choices(_CODE_CHARS, k=10))


def _random_handle(rng: random.Random) -> str:
    return (
        "@"
        + "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10)))
        + (str(rng.randint(0, 99)) if rng.random() < 0.3 else "")
    )


def toggle_links(texts: list[str], rate: float, rng: random.Random) -> list[str]:
    """In `rate` of the posts, drop the links if there are any, else append one. Official
    accounts' posts usually carry a link (70% of the training posts with a link are real), so
    without this the model takes "has a link" as evidence of "real". The added link's code has a
    stream of its own, so which posts are toggled depends on `rng` alone."""
    codes = random.Random(rng.random())
    return _toggle(texts, rate, rng, _URL, lambda text: f"{text} {_random_link(codes)}")


def toggle_handles(texts: list[str], rate: float, rng: random.Random) -> list[str]:
    """The same for user handles: 80% of the training posts that mention one are real (official
    accounts tag and retweet each other)."""
    names = random.Random(rng.random())
    return _toggle(texts, rate, rng, _HANDLE, lambda text: f"{_random_handle(names)} {text}")


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_HASH = re.compile(r"#(\w)")
_RETWEET = re.compile(r"^\s*RT\b\s*:?\s*")


def headline(text: str) -> str:
    """A post as a news headline: its first sentence, without links, handles or hashtag signs."""
    plain = _RETWEET.sub("", _HANDLE.sub(" ", _URL.sub(" ", text)))
    first = _SENTENCE_END.split(plain.strip(), maxsplit=1)[0]
    return " ".join(_HASH.sub(r"\1", first).split()) or text


def headlines(texts: list[str], rate: float, rng: random.Random) -> list[str]:
    """In `rate` of the posts, keep only the headline. Headlines from other sources carry none of
    a post's style (links, handles, hashtags, length), which in CONSTRAINT marks official
    accounts' real posts; this teaches the model to judge a post by what it claims."""
    return [headline(text) if rng.random() < rate else text for text in texts]


def perturb(texts: list[str], cfg: TrainConfig, epoch: int) -> list[str]:
    """The epoch's perturbed copy of the training posts. A fresh draw per epoch (seeded by seed
    and epoch, so a resumed run draws the same), so no post stays altered for the whole run; each
    perturbation has its own stream."""
    texts = headlines(texts, cfg.headline_augmentation, random.Random(f"head/{cfg.seed}/{epoch}"))
    texts = toggle_links(texts, cfg.link_augmentation, random.Random(f"links/{cfg.seed}/{epoch}"))
    return toggle_handles(
        texts, cfg.handle_augmentation, random.Random(f"handles/{cfg.seed}/{epoch}")
    )


@dataclass
class TeacherLogits:
    """The teacher's logits [n, 2] on the training posts and, when asked for, on their
    headlines and its last-layer first-token states [n, hidden] on the posts
    (train_job/distill.py)."""

    posts: np.ndarray
    headlines: np.ndarray | None = None
    states: np.ndarray | None = None


@dataclass
class EpochInputs:
    """What one epoch trains on: the posts, in consistency mode their perturbed twins, and with a
    teacher its logits on each post (as written: a perturbed post keeps its original's target).
    With `twin_teacher`, the twins are headlines taught the teacher's logits on them instead of
    the consistency term."""

    enc: Encoded
    twins: Encoded | None = None
    has_twin: np.ndarray | None = None  # bool per post: its twin differs from it
    teacher: np.ndarray | None = None  # [n, 2] logits
    twin_teacher: np.ndarray | None = None  # [n, 2] logits on each post's twin
    teacher_states: np.ndarray | None = None  # [n, hidden] on each post as written


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
    if teacher is not None and teacher.headlines is not None:
        rng = random.Random(f"teacher-headlines/{cfg.seed}/{epoch}")
        cuts = [headline(text) for text in texts]
        drawn = [rng.random() < cfg.teacher_headlines for _ in texts]
        return EpochInputs(
            enc=encode(tokenizer, perturbed, labels, cfg.max_length),
            twins=encode(tokenizer, cuts, labels, cfg.max_length),
            has_twin=np.array([d and c != t for d, c, t in zip(drawn, cuts, texts, strict=True)]),
            teacher=posts_teacher,
            twin_teacher=teacher.headlines,
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


# --- batches --------------------------------------------------------------------------------------


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


# --- one step -------------------------------------------------------------------------------------


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
) -> torch.Tensor:
    """One optimisation step on the posts `idx`; returns the loss as a tensor (not synced).

    With `inputs` carrying twins, the twins of `idx` run in the same forward pass, and
    KL(original || twin) (the original's prediction held fixed, as in UDA, Xie et al. 2020) is
    added with weight `weights.consistency`. With teacher logits, `weights.distill` of the label
    loss is replaced by the distillation loss (see train_job/distill.py)."""
    weights = weights or LossWeights()
    twin_idx: list[int] = []
    extra = None
    if inputs is not None and inputs.twins is not None and inputs.has_twin is not None:
        twin_idx = [i for i in idx if inputs.has_twin[i]]
        extra = (inputs.twins, twin_idx)  # collate skips an empty extra
    batch = to_device(collate(enc, idx, pad_id, pad_multiple(device), extra), device)
    labels = to_device({"labels": torch.as_tensor(enc.labels[idx])}, device)["labels"]
    hidden = weights.hidden > 0 and inputs is not None and inputs.teacher_states is not None
    with autocast_for(device, precision):
        out = model(**batch, output_hidden_states=hidden)
    logits = out.logits.float()
    loss = loss_fn(logits[: len(idx)], labels)
    if inputs is not None and inputs.teacher is not None and weights.distill > 0:
        soft = distill_loss(logits[: len(idx)], inputs.teacher[idx], weights.temperature)
        loss = (1 - weights.distill) * loss + weights.distill * soft
    if hidden:
        states = out.hidden_states[-1][: len(idx), 0].float()
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
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


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


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device):
    # On CUDA the fused kernel updates every tensor in a few launches instead of a dozen per
    # parameter group; the CPU path keeps the default implementation (and its exact numbers).
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.learning_rate, **fused)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 matrices in hardware, where autocast to bf16 pays."""
    if device.type == "cuda":
        return True
    # torch has no public query for this; its private one is what oneDNN itself checks. Without
    # AVX512-BF16, bf16 on a CPU is emulated and slower than fp32.
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe is not None and probe())


def uses_bf16(device: torch.device, precision: str) -> bool:
    return precision == "auto" and native_bf16(device)


def autocast_for(device: torch.device, precision: str = "auto"):
    enabled = uses_bf16(device, precision)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but no CUDA device is visible")
    return torch.device(spec)


_LAYER = re.compile(r"\.layer\.(\d+)\.")


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: no weight decay on biases and LayerNorm; with layer_lr_decay < 1 lower
    layers learn more slowly (ULMFiT / ELECTRA style), the head at the full rate."""
    n_layers = getattr(model.config, "num_hidden_layers", 0)
    groups: dict[tuple[float, float], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if "embeddings" in name:
            depth = n_layers + 1
        elif match := _LAYER.search(name):
            depth = n_layers - int(match.group(1))
        else:
            depth = 0  # pooler and classifier
        lr = cfg.learning_rate * cfg.layer_lr_decay**depth
        decay = 0.0 if param.ndim == 1 or "LayerNorm" in name else cfg.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]


# --- the loop's state -----------------------------------------------------------------------------


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_macro_f1: float = -1.0
    examples_per_second: float = 0.0
    resumed_from_epoch: int | None = None
    averaged: dict | None = None  # weight averaging: epochs averaged, its val macro-F1, kept or not
    teacher: dict | None = None  # the teacher distilled from: source, id, its scores, logits cache
    matmul_dtype: str = "float32"  # what --precision gave on this device: float32 or bfloat16


@dataclass
class LoopState:
    """Everything a checkpoint restores besides model and optimizer."""

    result: TrainResult = field(default_factory=TrainResult)
    start_epoch: int = 0
    # Running mean of the epoch-end weights (Izmailov et al., 2018: flatter, steadier optimum).
    average: dict[str, torch.Tensor] | None = None
    averaged_epochs: int = 0
    seen: int = 0
    seconds: float = 0.0

    @property
    def epochs_without_gain(self) -> int:
        return len(self.result.history) - 1 - self.result.best_epoch if self.result.history else 0


class _Progress:
    """tqdm on a terminal, plain periodic log lines elsewhere (Cloud Run logs)."""

    def __init__(self, total: int, desc: str, every: int) -> None:
        self.bar = None
        self.every, self.n, self.total, self.desc = every, 0, total, desc
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False)

    def update(self, loss: torch.Tensor) -> None:
        # loss.item() waits for the GPU, so it is read only when shown: on CUDA a read every step
        # would stop the CPU from queueing the next step while the GPU runs this one.
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
            if self.n % self.every == 0 or self.n == self.total:
                self.bar.set_postfix(loss=f"{loss.item():.4f}")
        elif self.n % self.every == 0 or self.n == self.total:
            log.info("%s step %d/%d loss %.4f", self.desc, self.n, self.total, loss.item())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class Trainer:
    """The pieces every step of the loop needs."""

    cfg: TrainConfig
    model: nn.Module
    tokenizer: object
    device: torch.device
    pad_id: int
    optimizer: torch.optim.Optimizer
    scheduler: object
    loss_fn: nn.Module
    store: Store
    run_prefix: str
    work_dir: Path


# --- the loop: a table of contents ----------------------------------------------------------------


def train(
    cfg: TrainConfig,
    model: nn.Module,
    tokenizer,
    dataset: Dataset,
    store: Store,
    run_prefix: str,
    work_dir: Path,
) -> TrainResult:
    set_seed(cfg.seed)
    train_df, val_df = dataset.splits["train"], dataset.splits["val"]
    val_enc = encode(tokenizer, val_df["text"].tolist(), val_df["label"], cfg.max_length)
    trainer = make_trainer(cfg, model, tokenizer, len(train_df), store, run_prefix, work_dir)
    state = resume(trainer)
    state.result.matmul_dtype = (
        "bfloat16" if uses_bf16(trainer.device, cfg.precision) else "float32"
    )
    teacher = None
    if cfg.teacher:
        from train_job.distill import teacher_logits

        texts = train_df["text"].tolist()
        posts, state.result.teacher = teacher_logits(
            cfg.teacher, texts, cfg.max_length, store, work_dir
        )
        teacher = TeacherLogits(posts)
        if cfg.teacher_headlines > 0:
            cuts = [headline(text) for text in texts]
            teacher.headlines, on_cuts = teacher_logits(
                cfg.teacher, cuts, cfg.max_length, store, work_dir
            )
            state.result.teacher["headline_logits_cache"] = on_cuts["logits_cache"]
        if cfg.teacher_hidden > 0:
            from train_job.distill import teacher_states

            teacher.states, state.result.teacher["states_cache"] = teacher_states(
                cfg.teacher, texts, cfg.max_length, store, work_dir
            )
    for epoch in range(state.start_epoch, cfg.epochs):
        if state.epochs_without_gain >= cfg.patience:
            log.info("early stop: no val macro-F1 gain for %d epoch(s)", state.epochs_without_gain)
            break
        texts, labels = train_df["text"].tolist(), train_df["label"]
        inputs = epoch_inputs(cfg, tokenizer, texts, labels, epoch, teacher)
        entry = train_one_epoch(trainer, inputs, epoch, state)
        entry |= validate(trainer, val_enc)
        record_epoch(trainer, state, entry)
        update_average(trainer, state, epoch)
        save_checkpoint(trainer, state, epoch)
    return final_weights(trainer, state, val_enc)


def make_trainer(
    cfg: TrainConfig,
    model: nn.Module,
    tokenizer,
    n_train: int,
    store: Store,
    run_prefix: str,
    work_dir: Path,
) -> Trainer:
    device = pick_device(cfg.device)
    model.to(device)
    optimizer = make_optimizer(model, cfg, device)
    from transformers import get_linear_schedule_with_warmup

    total_steps = -(-n_train // cfg.batch_size) * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(cfg.warmup_ratio * total_steps), total_steps
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    pad_id = tokenizer.pad_token_id or 0
    return Trainer(
        cfg,
        model,
        tokenizer,
        device,
        pad_id,
        optimizer,
        scheduler,
        loss_fn,
        store,
        run_prefix,
        work_dir,
    )


def resume(t: Trainer) -> LoopState:
    """The state after the run's last finished epoch, or a fresh one."""
    ckpt_key = f"{t.run_prefix}/{CHECKPOINT_KEY}"
    if not t.store.exists(ckpt_key):
        return LoopState()
    local = t.work_dir / "resume_state.pt"
    t.store.download_file(ckpt_key, local)
    # weights_only: the file comes back from the store, and whoever can write runs/ must not run
    # code as this job (which publishes bundles and moves the production pointer). Only tensors
    # and plain containers of numbers and strings load; a pickled object is refused.
    saved = torch.load(local, map_location=t.device, weights_only=True)
    t.model.load_state_dict(saved["model"])
    t.optimizer.load_state_dict(saved["optimizer"])
    t.scheduler.load_state_dict(saved["scheduler"])
    random.setstate(python_rng_state(saved["python_rng"]))
    torch.set_rng_state(saved["torch_rng"].cpu())
    result = TrainResult(**saved["result"])
    result.resumed_from_epoch = saved["epoch"]
    log.info("resuming run %s after epoch %d", t.run_prefix, saved["epoch"])
    return LoopState(
        result=result,
        start_epoch=saved["epoch"] + 1,
        average=saved.get("average"),
        averaged_epochs=saved.get("averaged_epochs", 0),
    )


def train_one_epoch(t: Trainer, inputs: EpochInputs, epoch: int, state: LoopState) -> dict:
    t.model.train()
    enc = inputs.enc
    # The batch order depends on seed and epoch only, so a resumed run sees the same order.
    rng = random.Random(f"batches/{t.cfg.seed}/{epoch}")
    if t.cfg.length_buckets:
        batches = bucketed_batches(enc.lengths, t.cfg.batch_size, rng, enc.labels)
    else:
        order = list(range(len(enc.labels)))
        rng.shuffle(order)
        batches = [order[i : i + t.cfg.batch_size] for i in range(0, len(order), t.cfg.batch_size)]
    progress = _Progress(len(batches), f"epoch {epoch + 1}/{t.cfg.epochs}", t.cfg.log_every)
    started = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=t.device)
    for idx in batches:
        loss = train_step(
            t.model,
            enc,
            idx,
            t.pad_id,
            t.device,
            t.loss_fn,
            t.optimizer,
            t.scheduler,
            inputs,
            LossWeights.from_config(t.cfg),
            t.cfg.precision,
        )
        loss_sum += loss
        progress.update(loss)
    progress.close()
    train_loss = float(loss_sum) / max(len(batches), 1)  # also waits for the GPU's last step
    elapsed = time.perf_counter() - started
    state.seen, state.seconds = state.seen + len(enc.labels), state.seconds + elapsed
    return {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "examples_per_second": len(enc.labels) / elapsed,
    }


def validate(t: Trainer, val_enc: Encoded) -> dict:
    from train_job.evaluate import classification_metrics

    logits = predict_logits(t.model, val_enc, t.pad_id, t.device, precision=t.cfg.precision)
    val = classification_metrics(logits, val_enc.labels)
    val_loss = float(t.loss_fn(torch.tensor(logits), torch.tensor(val_enc.labels)))
    return {"val_loss": val_loss, "val_macro_f1": val["macro_f1"], "val_accuracy": val["accuracy"]}


def record_epoch(t: Trainer, state: LoopState, entry: dict) -> None:
    """Adds the epoch to the history; a new best epoch's weights go to the store."""
    result = state.result
    result.history.append(entry)
    log.info("epoch %d %s", entry["epoch"], json.dumps({k: round(v, 4) for k, v in entry.items()}))
    result.examples_per_second = state.seen / state.seconds if state.seconds else 0.0
    if entry["val_macro_f1"] <= result.best_val_macro_f1:
        return
    result.best_val_macro_f1, result.best_epoch = entry["val_macro_f1"], entry["epoch"] - 1
    best_dir = t.work_dir / "best_model"
    t.model.save_pretrained(best_dir)
    for file in best_dir.iterdir():
        t.store.upload_file(file, f"{t.run_prefix}/{BEST_MODEL_PREFIX}/{file.name}")


def update_average(t: Trainer, state: LoopState, epoch: int) -> None:
    if not t.cfg.average_from_epoch or epoch + 1 < t.cfg.average_from_epoch:
        return
    current = {k: v.detach().float().clone() for k, v in t.model.state_dict().items()}
    if state.average is None:
        state.average = current
    else:
        for key, value in current.items():
            state.average[key] += (value - state.average[key]) / (state.averaged_epochs + 1)
    state.averaged_epochs += 1


def python_rng_tensors(state: tuple) -> dict:
    """random.getstate() as what a weights_only load accepts: its 625 words as a tensor."""
    version, internal, gauss_next = state
    return {
        "version": version,
        "internal": torch.tensor(internal, dtype=torch.int64),
        "gauss_next": gauss_next,
    }


def python_rng_state(saved: dict) -> tuple:
    """The inverse of python_rng_tensors, for random.setstate."""
    internal = tuple(int(word) for word in saved["internal"].tolist())
    return saved["version"], internal, saved["gauss_next"]


def save_checkpoint(t: Trainer, state: LoopState, epoch: int) -> None:
    local = t.work_dir / "state.pt"
    torch.save(
        {
            "epoch": epoch,
            "model": t.model.state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "scheduler": t.scheduler.state_dict(),
            # Through JSON: plain lists, dicts, numbers and strings, which weights_only loads
            # (a numpy scalar or a Path would fail here, at the save, not at the resume).
            "result": json.loads(json.dumps(state.result.__dict__)),
            "python_rng": python_rng_tensors(random.getstate()),
            "torch_rng": torch.get_rng_state(),
            "average": state.average,
            "averaged_epochs": state.averaged_epochs,
        },
        local,
    )
    t.store.upload_file(local, f"{t.run_prefix}/{CHECKPOINT_KEY}")


def final_weights(t: Trainer, state: LoopState, val_enc: Encoded) -> TrainResult:
    """Loads the result into the model: the best epoch's weights (wherever they were saved, this
    run or the one it resumed), or the epoch average when it scores at least as well."""
    result = state.result
    best_local = t.work_dir / "best_model"
    for key in t.store.list(f"{t.run_prefix}/{BEST_MODEL_PREFIX}"):
        t.store.download_file(key, best_local / key.rsplit("/", 1)[-1])
    from safetensors.torch import load_file

    best_weights = load_file(best_local / "model.safetensors")
    if state.average is not None and state.averaged_epochs >= 2:
        dtypes = {k: v.dtype for k, v in t.model.state_dict().items()}
        t.model.load_state_dict({k: v.to(dtypes[k]) for k, v in state.average.items()})
        val_macro_f1 = validate(t, val_enc)["val_macro_f1"]
        kept = val_macro_f1 >= result.best_val_macro_f1
        result.averaged = {
            "epochs": state.averaged_epochs,
            "val_macro_f1": val_macro_f1,
            "kept": kept,
        }
        log.info(
            "weight average of %d epochs: %s", state.averaged_epochs, json.dumps(result.averaged)
        )
        if kept:
            return result
    t.model.load_state_dict(best_weights, strict=False)
    t.model.to(t.device)
    return result
