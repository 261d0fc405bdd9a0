"""Train stage: a plain PyTorch loop, readable in one sitting.

- Dynamic padding with length-bucketed batches: each batch holds texts of similar length and is
  padded only to its longest (2.7x the examples/s of padding to 128 on 2 CPU cores,
  reports/bench_train.md; no gain on a GPU at this size, docs/gpu.md).
- AdamW with linear warm-up and decay, optional layer-wise learning-rate decay, fixed seeds.
- Early stopping on validation macro-F1; the best epoch's weights are the result.
- A checkpoint per epoch in the artifact store; a job started again with the same run id resumes
  from it (Cloud Run retries a failed task with the same execution id).
- CUDA with bf16 autocast when a GPU is present.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

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


_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"@\w+")


def _toggle(texts: list[str], rate: float, seed: int, pattern: re.Pattern, add) -> list[str]:
    """In `rate` of the posts: remove every match of `pattern` if there is one, else add one."""
    rng = random.Random(seed)
    out = []
    for text in texts:
        if rng.random() < rate:
            text = " ".join(pattern.sub(" ", text).split()) if pattern.search(text) else add(text)
        out.append(text)
    return out


def toggle_links(texts: list[str], rate: float, seed: int) -> list[str]:
    """Training-time augmentation: in `rate` of the posts, drop the links if there are any, else
    append one. Real posts from official accounts usually carry a link, so without this the model
    learns "has a link" as evidence of "real", and appending a link flips confident fakes."""
    return _toggle(texts, rate, seed, _URL, lambda text: text + " https://t.co/x")


def toggle_handles(texts: list[str], rate: float, seed: int) -> list[str]:
    """The same for user handles: 80% of the CONSTRAINT training posts that mention a handle are
    real (official accounts tag and retweet each other), so without this a handle put in front of
    a confident fake post can flip it (3.2% of them, all fake to real, for one full-profile seed,
    where tests/behaviour allows 3%)."""
    return _toggle(texts, rate, seed, _HANDLE, lambda text: "@user " + text)


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
    real ones (median 27 vs 47 tokens), so plain length buckets make batches of mostly one label
    (share of fake per batch: std 0.25, against 0.09 for random batches and 0.015 here), which
    pushes the classifier's bias back and forth from step to step. The price is more padding
    (tokens computed / real tokens 1.21 vs 1.04; random batches: 2.25)."""
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
    enc: Encoded, idx: list[int], pad_id: int, multiple: int = 1
) -> dict[str, torch.Tensor]:
    """Pads the posts `idx` to their longest, rounded up to `multiple`. On CUDA the job rounds
    to 8: new tensor shapes cost extra on first use there, and with one width per length the
    bench ran at 1,339 examples/s on an H100 against 7,698 padded to 64; rounding cut the new
    widths met in its timed batches from 35 to 2 (docs/gpu.md). Multiples of 8 also suit the
    tensor cores."""
    width = padded_width(enc, idx, multiple)
    batch = {}
    for key, rows in enc.features.items():
        pad = pad_id if key == "input_ids" else 0
        batch[key] = torch.tensor(
            [rows[i] + [pad] * (width - len(rows[i])) for i in idx], dtype=torch.long
        )
    return batch


@torch.no_grad()
def predict_logits(
    model: nn.Module, enc: Encoded, pad_id: int, device: torch.device, batch_size: int = 64
) -> np.ndarray:
    model.eval()
    out = np.zeros((len(enc.labels), 2), dtype=np.float32)
    for idx in bucketed_batches(enc.lengths, batch_size, rng=None):
        batch = to_device(collate(enc, idx, pad_id, pad_multiple(device)), device)
        with _autocast(device):
            out[idx] = model(**batch).logits.float().cpu().numpy()
    return out


def pad_multiple(device: torch.device) -> int:
    return 8 if device.type == "cuda" else 1  # why: see collate


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type != "cuda":
        return batch
    # Pinned host memory lets the copy run alongside the GPU's work on the last step.
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def train_step(
    model: nn.Module,
    enc: Encoded,
    idx: list[int],
    pad_id: int,
    device: torch.device,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
) -> torch.Tensor:
    """One optimisation step on the posts `idx`; returns the loss as a tensor (not synced)."""
    batch = to_device(collate(enc, idx, pad_id, pad_multiple(device)), device)
    labels = to_device({"labels": torch.as_tensor(enc.labels[idx])}, device)["labels"]
    with _autocast(device):
        logits = model(**batch).logits
    loss = loss_fn(logits.float(), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device):
    # On CUDA the fused kernel updates every tensor in a few launches instead of a dozen per
    # parameter group; the CPU path keeps the default implementation (and its exact numbers).
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.learning_rate, **fused)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


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


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_macro_f1: float = -1.0
    examples_per_second: float = 0.0
    resumed_from_epoch: int | None = None
    averaged: dict | None = None  # weight averaging: epochs averaged, its val macro-F1, kept or not


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
    device = pick_device(cfg.device)
    model.to(device)
    pad_id = tokenizer.pad_token_id or 0
    train_df, val_df = dataset.splits["train"], dataset.splits["val"]
    train_texts = toggle_links(train_df["text"].tolist(), cfg.link_augmentation, cfg.seed)
    # Its own random stream, so the links toggled stay those of a run without handle toggling.
    train_texts = toggle_handles(train_texts, cfg.handle_augmentation, cfg.seed + 1)
    train_enc = encode(tokenizer, train_texts, train_df["label"], cfg.max_length)
    val_enc = encode(tokenizer, val_df["text"].tolist(), val_df["label"], cfg.max_length)

    steps_per_epoch = -(-len(train_df) // cfg.batch_size)
    optimizer = make_optimizer(model, cfg, device)
    from transformers import get_linear_schedule_with_warmup

    total_steps = steps_per_epoch * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(cfg.warmup_ratio * total_steps), total_steps
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    result = TrainResult()
    start_epoch = 0
    # Running mean of the epoch-end weights (Izmailov et al., 2018: flatter, steadier optimum).
    average: dict[str, torch.Tensor] | None = None
    averaged_epochs = 0

    ckpt_key = f"{run_prefix}/{CHECKPOINT_KEY}"
    if store.exists(ckpt_key):
        local = work_dir / "resume_state.pt"
        store.download_file(ckpt_key, local)
        state = torch.load(local, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        result = TrainResult(**state["result"])
        start_epoch = state["epoch"] + 1
        result.resumed_from_epoch = state["epoch"]
        average, averaged_epochs = state.get("average"), state.get("averaged_epochs", 0)
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resuming run %s after epoch %d", run_prefix, state["epoch"])

    rng = random.Random(cfg.seed)
    for _ in range(start_epoch):  # the same data order as an uninterrupted run
        bucketed_batches(train_enc.lengths, cfg.batch_size, rng, train_enc.labels)
    epochs_without_gain = start_epoch - 1 - result.best_epoch if start_epoch else 0
    seen, seconds = 0, 0.0
    for epoch in range(start_epoch, cfg.epochs):
        if epochs_without_gain >= cfg.patience:
            log.info("early stop: no val macro-F1 gain for %d epoch(s)", epochs_without_gain)
            break
        model.train()
        batches = bucketed_batches(train_enc.lengths, cfg.batch_size, rng, train_enc.labels)
        progress = _Progress(len(batches), f"epoch {epoch + 1}/{cfg.epochs}", cfg.log_every)
        started = time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for idx in batches:
            loss = train_step(model, train_enc, idx, pad_id, device, loss_fn, optimizer, scheduler)
            loss_sum += loss
            progress.update(loss)
        progress.close()
        train_loss = float(loss_sum) / max(len(batches), 1)  # also waits for the GPU's last step
        elapsed = time.perf_counter() - started
        seen, seconds = seen + len(train_enc.labels), seconds + elapsed

        from train_job.evaluate import classification_metrics

        val_logits = predict_logits(model, val_enc, pad_id, device)
        val = classification_metrics(val_logits, val_enc.labels)
        val_loss = float(loss_fn(torch.tensor(val_logits), torch.tensor(val_enc.labels)))
        entry = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_macro_f1": val["macro_f1"],
            "val_accuracy": val["accuracy"],
            "examples_per_second": len(train_enc.labels) / elapsed,
        }
        result.history.append(entry)
        log.info("epoch %d %s", epoch + 1, json.dumps({k: round(v, 4) for k, v in entry.items()}))
        if val["macro_f1"] > result.best_val_macro_f1:
            result.best_val_macro_f1, result.best_epoch = val["macro_f1"], epoch
            epochs_without_gain = 0
            best_dir = work_dir / "best_model"
            model.save_pretrained(best_dir)
            for file in best_dir.iterdir():
                store.upload_file(file, f"{run_prefix}/{BEST_MODEL_PREFIX}/{file.name}")
        else:
            epochs_without_gain += 1
        result.examples_per_second = seen / seconds if seconds else 0.0
        if cfg.average_from_epoch and epoch + 1 >= cfg.average_from_epoch:
            current = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
            if average is None:
                average = current
            else:
                for key, value in current.items():
                    average[key] += (value - average[key]) / (averaged_epochs + 1)
            averaged_epochs += 1

        local = work_dir / "state.pt"
        torch.save(
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "result": result.__dict__,
                "python_rng": random.getstate(),
                "torch_rng": torch.get_rng_state(),
                "average": average,
                "averaged_epochs": averaged_epochs,
            },
            local,
        )
        store.upload_file(local, ckpt_key)

    # The result is the best epoch's weights, wherever they were saved (this run or the last).
    best_local = work_dir / "best_model"
    for key in store.list(f"{run_prefix}/{BEST_MODEL_PREFIX}"):
        store.download_file(key, best_local / key.rsplit("/", 1)[-1])
    from safetensors.torch import load_file

    best_weights = load_file(best_local / "model.safetensors")
    if average is not None and averaged_epochs >= 2:
        from train_job.evaluate import classification_metrics

        dtypes = {k: v.dtype for k, v in model.state_dict().items()}
        model.load_state_dict({k: v.to(dtypes[k]) for k, v in average.items()})
        val = classification_metrics(predict_logits(model, val_enc, pad_id, device), val_enc.labels)
        kept = val["macro_f1"] >= result.best_val_macro_f1
        result.averaged = {"epochs": averaged_epochs, "val_macro_f1": val["macro_f1"], "kept": kept}
        log.info("weight average of %d epochs: %s", averaged_epochs, json.dumps(result.averaged))
        if kept:
            model.to(device)
            return result
    model.load_state_dict(best_weights, strict=False)
    model.to(device)
    return result
