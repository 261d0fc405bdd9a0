"""A run's checkpoint is read back with torch.load(weights_only=True): a file in runs/ that
carries a pickled object is refused without running it, and what save_checkpoint writes (the
model, optimizer, scheduler, loop state and both random generators) still resumes."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from artifact_store import LocalStore
from train_job.checkpoint import CHECKPOINT_KEY, LoopState, TrainResult, resume, save_checkpoint

RUN = "runs/checkpoint-test"


class _RunsCode:
    """What an attacker with write access to runs/ would put in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _trainer(tmp: Path, seed: int) -> SimpleNamespace:
    torch.manual_seed(seed)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    work = tmp / f"work-{seed}"
    work.mkdir()
    return SimpleNamespace(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        store=LocalStore(tmp / "store"),
        run_prefix=RUN,
        work_dir=work,
        device=torch.device("cpu"),
    )


def test_a_checkpoint_with_a_pickled_object_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    trainer = _trainer(tmp_path, 0)
    checkpoint = tmp_path / "store" / RUN / CHECKPOINT_KEY
    checkpoint.parent.mkdir(parents=True)
    torch.save({"epoch": 0, "model": _RunsCode(marker)}, checkpoint)

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        resume(trainer)
    assert not marker.exists()


def test_what_save_checkpoint_writes_resumes(tmp_path: Path) -> None:
    saved_from = _trainer(tmp_path, 1)
    result = TrainResult(
        # What validate() puts there, and a numpy scalar as a metric helper might return.
        history=[{"epoch": 1, "val_loss": 0.5, "val_macro_f1": np.float64(0.75)}],
        best_epoch=0,
        best_val_macro_f1=0.75,
        teacher={"source": "gs://bucket/teacher", "scores": [0.9, 0.8]},
    )
    average = {k: v.clone() for k, v in saved_from.model.state_dict().items()}
    state = LoopState(result=result, average=average, averaged_epochs=1)
    random.seed(7)
    torch.manual_seed(7)
    save_checkpoint(saved_from, state, epoch=0)
    python_next, torch_next = random.random(), torch.rand(3)

    resumed_into = _trainer(tmp_path, 2)  # other weights, other generator states
    random.seed(99)
    torch.manual_seed(99)
    loaded = resume(resumed_into)

    assert loaded.start_epoch == 1 and loaded.averaged_epochs == 1
    assert loaded.result.resumed_from_epoch == 0
    assert loaded.result.history == [{"epoch": 1, "val_loss": 0.5, "val_macro_f1": 0.75}]
    assert loaded.result.teacher == result.teacher
    for name, value in saved_from.model.state_dict().items():
        assert torch.equal(resumed_into.model.state_dict()[name], value)
        assert torch.equal(loaded.average[name], average[name])
    assert resumed_into.optimizer.state_dict()["state"][0]["step"] == 1
    assert resumed_into.scheduler.state_dict()["last_epoch"] == 1
    assert random.random() == python_next  # both generators continue where the run stopped
    assert torch.equal(torch.rand(3), torch_next)
