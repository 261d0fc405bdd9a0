"""A batch run in groups of similar length: every row once, fewer padded tokens, and the same
outputs, loss and gradient as the batch padded as one (with twins and teacher states too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from train_job.batching import encode, length_groups
from train_job.epoch_inputs import EpochInputs
from train_job.losses import LossWeights, forward_rows, train_step


def _padded_tokens(lengths: list[int], groups: list[list[int]]) -> int:
    return sum(len(g) * max(lengths[k] for k in g) for g in groups)


@pytest.mark.parametrize("max_groups", [1, 2, 3])
def test_every_row_once_and_never_more_padding(max_groups: int) -> None:
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in np.concatenate([rng.integers(8, 20, 20), rng.integers(50, 65, 12)])]
    groups = length_groups(lengths, max_groups)
    assert sorted(k for g in groups for k in g) == list(range(len(lengths)))
    assert len(groups) <= max_groups
    tokens = _padded_tokens(lengths, groups)
    assert tokens <= len(lengths) * max(lengths)
    if max_groups > 1:  # headlines and articles apart: the headlines no longer padded to 64
        assert tokens < 0.6 * len(lengths) * max(lengths)
        assert max(lengths[k] for k in groups[0]) < 20


def test_the_split_is_the_cheapest_one() -> None:
    lengths = [64, 10, 12, 64, 30, 11]
    groups = length_groups(lengths, 3)
    assert [sorted(lengths[k] for k in g) for g in groups] == [[10, 11, 12], [30], [64, 64]]
    assert length_groups(lengths, 2) == [[1, 5, 2], [4, 0, 3]]  # 3 x 12 + 3 x 64 tokens


def test_a_group_that_saves_less_than_its_cost_is_not_split_off() -> None:
    assert len(length_groups([20, 21, 22, 23], 3, group_cost=0.0)) == 3
    assert length_groups([20, 21, 22, 23], 3, group_cost=8.0) == [[0, 1, 2, 3]]
    assert length_groups([], 2) == []


@pytest.fixture(scope="module")
def tokenizer():
    from train_job.model import load_tokenizer, packaged_minilm

    return load_tokenizer(packaged_minilm())


def _tiny_model(folder: Path):
    from tests.tiny_model import make_tiny_bert
    from train_job.model import load_classifier

    model = load_classifier(make_tiny_bert(folder, seed=0))
    with torch.no_grad():  # a fresh head's logits are near 0: widen them so the loss moves
        model.classifier.weight.mul_(300.0)
    return model.eval()  # no dropout: grouped and whole must differ only by rounding


TEXTS = [
    "5G towers spread the virus",
    "The ministry reports 1,204 new cases today and 3 deaths; testing continues in all districts "
    "as announced last week, with more sites opening on Monday https://t.co/abc",
    "Vaccine trial results published",
    "Officials say masks will stay mandatory on public transport until the end of the month, "
    "according to a statement released by the department of health this morning",
    "Drinking hot water cures it",
    "Schools reopen",
]


def test_grouped_rows_give_the_outputs_of_one_padded_batch(tmp_path: Path, tokenizer) -> None:
    enc = encode(tokenizer, TEXTS, np.arange(6) % 2, 64)
    twins = encode(tokenizer, ["5G towers", "Schools reopen next week"], np.zeros(2), 64)
    rows = [(enc, i) for i in range(6)] + [(twins, 0), (twins, 1)]
    model = _tiny_model(tmp_path / "tiny")
    cpu = torch.device("cpu")
    with torch.no_grad():
        whole, whole_states = forward_rows(model, rows, 0, cpu, "fp32", 1, hidden=True)
        grouped, grouped_states = forward_rows(model, rows, 0, cpu, "fp32", 3, hidden=True)
    torch.testing.assert_close(grouped, whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grouped_states, whole_states, rtol=1e-4, atol=1e-5)


def test_a_grouped_step_takes_the_step_of_the_whole_batch(tmp_path: Path, tokenizer) -> None:
    labels = np.array([1, 0, 0, 0, 1, 0])
    enc = encode(tokenizer, TEXTS, labels, 64)
    twins = encode(tokenizer, [t.split(",")[0] for t in TEXTS], labels, 64)
    inputs = EpochInputs(enc, twins, np.array([True, True, False, True, False, False]))

    def step(max_groups: int) -> tuple[float, dict[str, torch.Tensor]]:
        model = _tiny_model(tmp_path / f"tiny{max_groups}")
        loss = train_step(
            model,
            enc,
            list(range(6)),
            tokenizer.pad_token_id,
            torch.device("cpu"),
            torch.nn.CrossEntropyLoss(),
            torch.optim.SGD(model.parameters(), lr=0.1),
            inputs=inputs,
            weights=LossWeights(consistency=1.0),
            precision="fp32",
            max_groups=max_groups,
        )
        return float(loss), {n: p.detach().clone() for n, p in model.named_parameters()}

    lengths = [int(enc.lengths[i]) for i in range(6)] + [int(twins.lengths[i]) for i in (0, 1, 3)]
    assert len(length_groups(lengths, 3, 4 * len(lengths))) > 1  # the step below does split
    whole_loss, whole = step(1)
    grouped_loss, grouped = step(3)
    assert grouped_loss == pytest.approx(whole_loss, rel=1e-5)
    for name in whole:
        torch.testing.assert_close(grouped[name], whole[name], rtol=1e-4, atol=1e-6)


def test_the_quick_mix_runs_in_two_groups_and_zero_is_bad_config() -> None:
    from train_job.config import resolve_config

    assert resolve_config(["--profile", "quick-multisource"]).length_groups == 2
    assert resolve_config(["--profile", "quick"]).length_groups == 1
    with pytest.raises(SystemExit, match="--length-groups must be 1"):
        resolve_config(["--length-groups", "0"])
