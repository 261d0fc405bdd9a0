"""The loop's state and its checkpoint in the store: written after every epoch, read back when the
run already has one (Cloud Run retries a failed task with the same execution id).

`resume` and `save_checkpoint` take the loop's Trainer (train_job/loop.py): its model, optimizer,
scheduler, device, store, run_prefix and work_dir.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "checkpoint/state.pt"
BEST_MODEL_PREFIX = "checkpoint/best_model"


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


def resume(t) -> LoopState:
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


def save_checkpoint(t, state: LoopState, epoch: int) -> None:
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
