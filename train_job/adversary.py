"""A source adversary (domain-adversarial training, Ganin et al., JMLR 2016, here conditioned on
the label as in CDAN, Long et al., NeurIPS 2018): a linear head learns to tell each training row's
source from the features the label head reads, one head for the real rows and one for the fake
rows, and a gradient-reversal layer sends the encoder the opposite of its gradient.

The encoder is thereby pushed to features from which a real item's source cannot be told, nor a
fake item's: an official account's real update and a news outlet's real headline should look
alike to the label head. Conditioning on the label keeps the label's own information: an
unconditioned adversary would also strip it, since some sources are mostly fake.

The adversary lives only in training: it is never saved into the model, the checkpoint or the
bundle, and a resumed run starts it afresh."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.strength * grad, None


class SourceAdversary(nn.Module):
    def __init__(self, hidden: int, n_sources: int, strength: float) -> None:
        super().__init__()
        self.n_sources, self.strength = n_sources, strength
        self.head = nn.Linear(hidden, 2 * n_sources)  # one block of source logits per label

    def loss(self, features: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor):
        """Cross-entropy of each row's source, read from its label's block of logits."""
        logits = self.head(_ReverseGradient.apply(features.float(), self.strength))
        blocks = logits.view(len(labels), 2, self.n_sources)
        return F.cross_entropy(blocks[torch.arange(len(labels)), labels], sources)


def head_input(model: nn.Module):
    """The module whose input is the features the label head reads: HF classifiers name their
    head `classifier` (BERT: a Linear on the pooled first token)."""
    head = getattr(model, "classifier", None)
    if head is None:
        raise ValueError("--source-adversary needs a model with a `classifier` head")
    return head


class FeatureTap:
    """Keeps the last input of the label head during a forward pass: one vector per row. BERT's
    head reads the pooled first token ([rows, hidden]); heads that read the whole sequence
    (MPNet's, RoBERTa's: [rows, tokens, hidden]) use its first token, so that is kept."""

    def __init__(self, model: nn.Module) -> None:
        self.features: torch.Tensor | None = None
        self._handle = head_input(model).register_forward_pre_hook(self._keep)

    def _keep(self, _module, args) -> None:
        features = args[0]
        self.features = features[:, 0] if features.dim() == 3 else features

    def close(self) -> None:
        self._handle.remove()


@dataclass
class Adversary:
    """What a training step needs of the adversary."""

    module: SourceAdversary
    optimizer: torch.optim.Optimizer
    tap: FeatureTap
    source_ids: np.ndarray  # [n] index of each training row's source

    @classmethod
    def build(cls, model: nn.Module, sources, strength: float, device: torch.device) -> Adversary:
        names = sorted(set(sources))
        ids = np.array([names.index(s) for s in sources], dtype=np.int64)
        module = SourceAdversary(model.config.hidden_size, len(names), strength).to(device)
        # A linear probe learns fast at a higher rate than the encoder's fine-tuning rate.
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
        return cls(module, optimizer, FeatureTap(model), ids)

    def loss(self, labels: torch.Tensor, idx: list[int]) -> torch.Tensor:
        features = self.tap.features[: len(idx)]
        sources = torch.as_tensor(self.source_ids[idx], device=labels.device)
        return self.module.loss(features, labels, sources)

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
