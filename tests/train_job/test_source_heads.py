"""Per-source heads (train_job/source_heads.py): each source reads its own head in training,
and the served head, the model's own, is their mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from train_job.config import resolve_config
from train_job.source_heads import SourceCorrections, SourceHeads


class _Classifier(torch.nn.Module):
    def __init__(self, hidden: int = 4) -> None:
        super().__init__()
        self.config = type("Config", (), {"hidden_size": hidden})()
        self.classifier = torch.nn.Linear(hidden, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)


def _trained_corrections() -> SourceCorrections:
    torch.manual_seed(0)
    corrections = SourceCorrections(hidden=4, n_sources=3)
    with torch.no_grad():
        corrections.weight.normal_()
        corrections.bias.normal_()
    return corrections


def test_corrections_start_at_zero_so_every_source_begins_on_the_shared_head() -> None:
    corrections = SourceCorrections(hidden=4, n_sources=3)
    out = corrections(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
    assert torch.equal(out, torch.zeros(5, 2))


def test_the_mean_of_the_source_heads_is_the_shared_head() -> None:
    corrections = _trained_corrections()
    features = torch.randn(7, 4)
    per_source = torch.stack(
        [corrections(features, torch.full((7,), s, dtype=torch.long)) for s in range(3)]
    )
    assert per_source.abs().max() > 0.1  # the sources' heads do differ
    assert torch.allclose(per_source.mean(0), torch.zeros(7, 2), atol=1e-6)


def test_each_row_is_scored_by_its_own_source() -> None:
    corrections = _trained_corrections()
    features = torch.randn(4, 4)
    sources = torch.tensor([2, 0, 1, 2])
    out = corrections(features, sources)
    for row, source in enumerate(sources.tolist()):
        alone = corrections(features[row : row + 1], torch.tensor([source]))
        assert torch.allclose(out[row], alone[0], atol=1e-6)


def test_a_source_whose_labels_follow_a_feature_the_others_contradict_learns_it_alone() -> None:
    """Source 0 labels by feature 0, source 1 by its opposite: the shared head cannot fit both,
    the source heads can, and the shared head (their mean) is left with no opinion of feature 0."""
    torch.manual_seed(0)
    model = _Classifier(hidden=2)
    sources = np.array([0, 1] * 64)
    x = torch.randn(128, 2)
    labels = torch.where(torch.as_tensor(sources) == 0, x[:, 0] > 0, x[:, 0] < 0).long()
    heads = SourceHeads.build(model, sources.tolist(), torch.device("cpu"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    idx = list(range(128))
    for _ in range(1000):
        loss = F.cross_entropy(heads.logits(model(x), idx), labels)
        loss.backward()
        optimizer.step()
        heads.step()
        optimizer.zero_grad()
    accuracy = (heads.logits(model(x), idx).argmax(1) == labels).float().mean()
    assert accuracy > 0.9
    weight = model.classifier.weight.detach()
    assert abs(float(weight[1, 0] - weight[0, 0])) < 0.1  # the shared head ignores feature 0
    heads.tap.close()


def test_source_heads_need_a_mix() -> None:
    with pytest.raises(SystemExit, match="--source-heads needs --sources"):
        resolve_config(["--source-heads"], env={})
