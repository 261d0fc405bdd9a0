"""The source adversary (train_job/adversary.py): its head learns the source, the encoder's
features get the reversed gradient, and each label has its own head."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from train_job.adversary import FeatureTap, SourceAdversary


def _adversary(strength: float) -> SourceAdversary:
    torch.manual_seed(0)
    return SourceAdversary(hidden=4, n_sources=3, strength=strength)


def test_features_get_the_reversed_scaled_gradient_of_the_source_loss() -> None:
    adversary = _adversary(strength=0.5)
    features = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    sources = torch.tensor([0, 1, 2, 0, 1, 2])
    adversary.loss(features, labels, sources).backward()
    reversed_grad = features.grad.clone()

    # The same loss without reversal: what the encoder would get from helping the adversary.
    plain = features.detach().clone().requires_grad_(True)
    blocks = adversary.head(plain).view(6, 2, 3)
    F.cross_entropy(blocks[torch.arange(6), labels], sources).backward()
    assert torch.allclose(reversed_grad, -0.5 * plain.grad, atol=1e-6)


def test_the_head_learns_the_source_from_features_that_carry_it() -> None:
    adversary = _adversary(strength=1.0)
    optimizer = torch.optim.SGD(adversary.parameters(), lr=0.5)
    sources = torch.tensor([0, 1, 2] * 8)
    features = F.one_hot(sources, 4).float()  # the source is written in the features
    labels = torch.tensor([0, 1] * 12)
    first = float(adversary.loss(features, labels, sources))
    for _ in range(100):
        optimizer.zero_grad()
        adversary.loss(features, labels, sources).backward()
        optimizer.step()
    assert float(adversary.loss(features, labels, sources)) < first / 4


def test_each_label_reads_its_own_block_of_source_logits() -> None:
    adversary = _adversary(strength=1.0)
    with torch.no_grad():
        adversary.head.weight.zero_()
        adversary.head.bias.copy_(torch.tensor([5.0, 0, 0, 0, 0, 5.0]))  # real: 0, fake: 2
    features = torch.zeros(2, 4)
    sources = torch.tensor([0, 2])
    right = float(adversary.loss(features, torch.tensor([0, 1]), sources))
    wrong = float(adversary.loss(features, torch.tensor([1, 0]), sources))
    assert right < 0.02 < 5 < wrong


@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_strength_scales_only_what_the_encoder_gets(strength: float) -> None:
    adversary = _adversary(strength)
    features = torch.randn(4, 4, requires_grad=True)
    loss = adversary.loss(features, torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert adversary.head.weight.grad.abs().sum() > 0
    assert (features.grad.abs().sum() > 0) == (strength > 0)


class _SequenceHeadModel(torch.nn.Module):
    """A classifier whose head reads the whole sequence, as MPNet's and RoBERTa's do."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = torch.nn.Linear(4, 2)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.classifier(states)[:, 0]


@pytest.mark.parametrize("shape", [(3, 4), (3, 5, 4)])
def test_the_tap_keeps_one_feature_vector_per_row(shape: tuple[int, ...]) -> None:
    model = _SequenceHeadModel()
    tap = FeatureTap(model)
    states = torch.randn(*shape)
    model(states)
    expected = states if len(shape) == 2 else states[:, 0]
    assert torch.equal(tap.features, expected)
    tap.close()
    model(torch.randn(*shape))
    assert torch.equal(tap.features, expected)  # closed: no longer updated
