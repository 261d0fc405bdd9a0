"""Train stage: a plain PyTorch loop, readable in one sitting.

`train` reads as a table of contents:

1. inputs: validation token ids once; the training posts perturbed afresh every epoch
   (train_job/epoch_inputs.py);
2. optimizer and schedule: AdamW over the weights that train (`--frozen-layers` keeps the lowest
   at their pretrained values), linear warm-up and decay, optional layer-wise lr decay;
3. resume after the last finished epoch when the run already has a checkpoint
   (train_job/checkpoint.py);
4. each epoch: train on length-bucketed, dynamically padded batches (train_job/batching.py,
   train_job/losses.py; with several sources, optionally with the rows weighted so that no
   source's label prior counts, against a source adversary, train_job/adversary.py, or with a
   head per source, train_job/source_heads.py), score
   validation, keep the best epoch, update the weight average, write a checkpoint;
5. the result: the best epoch's weights, or the epoch average when it is at least as good.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from artifact_store import Store
from train_job.adversary import Adversary
from train_job.augment import first_sentence
from train_job.batching import Encoded, bucketed_batches, encode, predict_logits
from train_job.checkpoint import BEST_MODEL_PREFIX, LoopState, TrainResult, resume, save_checkpoint
from train_job.config import TrainConfig
from train_job.device import pick_device, set_seed, uses_bf16
from train_job.distill import teacher_logits, teacher_states
from train_job.epoch_inputs import EpochInputs, TeacherLogits, epoch_inputs
from train_job.evaluate import classification_metrics
from train_job.losses import LossWeights, source_balance_weights, train_step
from train_job.model import LAYER_INDEX, freeze_lower_layers
from train_job.source_heads import SourceHeads
from train_job.tables import Dataset

log = logging.getLogger(__name__)


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
    adversary: Adversary | None = None
    source_heads: SourceHeads | None = None


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
        texts = train_df["text"].tolist()
        posts, state.result.teacher = teacher_logits(
            cfg.teacher, texts, cfg.max_length, store, work_dir
        )
        teacher = TeacherLogits(posts)
        if cfg.teacher_headlines > 0:
            cuts = [first_sentence(text) for text in texts]
            teacher.first_sentences, on_cuts = teacher_logits(
                cfg.teacher, cuts, cfg.max_length, store, work_dir
            )
            state.result.teacher["headline_logits_cache"] = on_cuts["logits_cache"]
        if cfg.teacher_hidden > 0:
            teacher.states, state.result.teacher["states_cache"] = teacher_states(
                cfg.teacher, texts, cfg.max_length, store, work_dir
            )
    row_weights = None
    if cfg.source_balance != "off":
        row_weights = source_balance_weights(
            train_df["source"], train_df["label"], cfg.source_balance
        )
    if cfg.source_adversary > 0:
        trainer.adversary = Adversary.build(
            model, train_df["source"].tolist(), cfg.source_adversary, trainer.device
        )
    if cfg.source_heads:
        trainer.source_heads = SourceHeads.build(model, train_df["source"].tolist(), trainer.device)
    for epoch in range(state.start_epoch, cfg.epochs):
        if state.epochs_without_gain >= cfg.patience:
            log.info("early stop: no val macro-F1 gain for %d epoch(s)", state.epochs_without_gain)
            break
        texts, labels = train_df["text"].tolist(), train_df["label"]
        inputs = epoch_inputs(cfg, tokenizer, texts, labels, epoch, teacher)
        inputs.row_weights = row_weights
        entry = train_one_epoch(trainer, inputs, epoch, state)
        entry |= validate(trainer, val_enc)
        record_epoch(trainer, state, entry)
        update_average(trainer, state, epoch)
        save_checkpoint(trainer, state, epoch)
    for extra in (trainer.adversary, trainer.source_heads):
        if extra is not None:
            extra.tap.close()
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
    try:
        frozen = freeze_lower_layers(model, cfg.frozen_layers)
    except ValueError as e:  # the count is only checkable once the base model is loaded
        raise SystemExit(f"error: --frozen-layers: {e}") from e
    if frozen:
        log.info("%d pretrained weights frozen (embeddings, %d layers)", frozen, cfg.frozen_layers)
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
            t.adversary,
            t.source_heads,
            t.cfg.length_groups,
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


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, device: torch.device, fused: bool | None = None
):
    """AdamW over `param_groups`; fused (None: wherever the device has the kernel) updates each
    weight in one pass over its memory instead of a pass per arithmetic step. On 2 AVX2 cores the
    quick-multisource epoch (64 tokens) ran at 22.2 examples/s with it against 17.1-21 before
    (reports/quick_multisource_recipes/avx2_*.json); at 128 tokens, where matrix products
    dominate, `make bench-train` sees no difference. On CUDA it saves a dozen launches per
    parameter group."""
    if fused is None:
        fused = device.type in ("cpu", "cuda")
    extra = {"fused": True} if fused else {}
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.learning_rate, **extra)


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
        elif match := LAYER_INDEX.search(name):
            depth = n_layers - int(match.group(1))
        else:
            depth = 0  # pooler and classifier
        lr = cfg.learning_rate * cfg.layer_lr_decay**depth
        decay = 0.0 if param.ndim == 1 or "LayerNorm" in name else cfg.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]
