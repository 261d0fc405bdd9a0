"""The job's AdamW: the fused kernel on CPU, taking the same steps as the default implementation
over the same parameter groups (no weight decay on biases and LayerNorm)."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.conftest import tiny_config
from train_job.loop import make_optimizer
from train_job.model import load_classifier


def _steps(base: Path, fused: bool, steps: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = load_classifier(base)
    cfg = tiny_config(base, Path(), learning_rate=1e-2, weight_decay=0.1)
    optimizer = make_optimizer(model, cfg, torch.device("cpu"), fused=fused)
    ids = torch.randint(5, 100, (4, 12), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 1, 0])
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_the_job_uses_the_fused_kernel_on_cpu(tiny_base_model: Path) -> None:
    model = load_classifier(tiny_base_model)
    optimizer = make_optimizer(model, tiny_config(tiny_base_model, Path()), torch.device("cpu"))
    assert optimizer.defaults["fused"] is True
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.01}


def test_fused_and_default_adamw_take_the_same_steps(tiny_base_model: Path) -> None:
    fused, default = _steps(tiny_base_model, True), _steps(tiny_base_model, False)
    start = _steps(tiny_base_model, True, steps=0)
    moved = [n for n in fused if not torch.equal(fused[n], start[n])]
    assert moved, "three steps at lr 1e-2 moved no weight"
    # Each step moves a weight by about the learning rate (1e-2); the two implementations round
    # differently, by a few millionths.
    for name in fused:
        torch.testing.assert_close(fused[name], default[name], rtol=1e-4, atol=1e-5)
