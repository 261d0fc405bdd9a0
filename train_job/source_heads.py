"""Per-source heads: in training each source reads its own head, the model's label head plus a
linear correction for that source ("frustratingly easy" domain adaptation, Daumé III, ACL 2007:
shared and domain-specific parameters side by side). The corrections are centred across sources,
so the mean of the sources' heads is exactly the model's own head, and that is what is served:
the source of a text is unknown at serving time, and every source counts once in the mean.

What only one source's labels teach (its outlets' style, its label prior) can go into its
correction instead of the shared head. Like the source adversary, the corrections live only in
training: they are never saved into the model, the checkpoint or the bundle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from train_job.adversary import FeatureTap


class SourceCorrections(nn.Module):
    def __init__(self, hidden: int, n_sources: int) -> None:
        super().__init__()
        # Zero at the start: every source begins on the shared head.
        self.weight = nn.Parameter(torch.zeros(n_sources, 2, hidden))
        self.bias = nn.Parameter(torch.zeros(n_sources, 2))

    def forward(self, features: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """Each row's correction to the shared logits, [rows, 2]; they average to zero over
        sources for any features."""
        weight = self.weight - self.weight.mean(0, keepdim=True)
        bias = self.bias - self.bias.mean(0, keepdim=True)
        return torch.einsum("rh,rkh->rk", features.float(), weight[sources]) + bias[sources]


@dataclass
class SourceHeads:
    """What a training step needs of the per-source heads."""

    module: SourceCorrections
    optimizer: torch.optim.Optimizer
    tap: FeatureTap
    source_ids: np.ndarray  # [n] index of each training row's source

    @classmethod
    def build(cls, model: nn.Module, sources, device: torch.device) -> SourceHeads:
        names = sorted(set(sources))
        ids = np.array([names.index(s) for s in sources], dtype=np.int64)
        module = SourceCorrections(model.config.hidden_size, len(names)).to(device)
        # A linear head learns fast at a higher rate than the encoder's fine-tuning rate.
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
        return cls(module, optimizer, FeatureTap(model), ids)

    def logits(self, shared: torch.Tensor, idx: list[int]) -> torch.Tensor:
        """The logits of the rows `idx` under their own source's head."""
        sources = torch.as_tensor(self.source_ids[idx], device=shared.device)
        return shared + self.module(self.tap.features[: len(idx)], sources)

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
