"""Invariance training: links and handles toggled afresh every epoch, as replacements or as twins
with a consistency loss."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from train_job.augment import perturb, toggle_handles, toggle_links
from train_job.batching import Encoded, encode
from train_job.config import TrainConfig
from train_job.epoch_inputs import epoch_inputs
from train_job.losses import LossWeights, train_step

POSTS = [
    f"post {i} about masks https://t.co/{i}" if i % 2 else f"@who post {i}" for i in range(200)
]


def test_link_toggle_removes_links_or_adds_one() -> None:
    texts = ["a https://t.co/1 b", "c d", "e www.who.int/x"]
    assert toggle_links(texts, 0.0, random.Random(0)) == texts
    removed, added, removed_www = toggle_links(texts, 1.0, random.Random(0))
    assert (removed, removed_www) == ("a b", "e")
    assert re.fullmatch(r"c d https://t\.co/[A-Za-z0-9]{10}", added)
    # Every added link has a code of its own, as real short links do.
    links = toggle_links(["no link"] * 50, 1.0, random.Random(1))
    assert len(set(links)) == 50


def test_handle_toggle_removes_handles_or_adds_one() -> None:
    texts = ["@CDCgov says wash hands", "masks work", "RT @WHO: stay home @all"]
    assert toggle_handles(texts, 0.0, random.Random(0)) == texts
    removed, added, removed_two = toggle_handles(texts, 1.0, random.Random(0))
    assert (removed, removed_two) == ("says wash hands", "RT : stay home")
    assert re.fullmatch(r"@[a-z]{4,10}\d{0,2} masks work", added)


def test_first_sentence_is_the_posts_headline_without_its_style() -> None:
    from train_job.augment import first_sentence

    post = "#IndiaFightsCorona: 1,234 new cases today. Recovery at 80%. https://t.co/x @MoHFW"
    assert first_sentence(post) == "IndiaFightsCorona: 1,234 new cases today."
    assert first_sentence("RT @WHO: Wash your hands. Stay safe.") == "Wash your hands."
    assert first_sentence("https://t.co/abc") == "https://t.co/abc"  # nothing left: keep the post
    cfg = TrainConfig(headline_augmentation=1.0, link_augmentation=0.0, handle_augmentation=0.0)
    assert perturb([post], cfg, epoch=0) == [first_sentence(post)]


def test_each_epoch_draws_afresh_and_a_rerun_draws_the_same() -> None:
    cfg = TrainConfig(link_augmentation=0.3, handle_augmentation=0.3, seed=7)
    first, second = perturb(POSTS, cfg, epoch=0), perturb(POSTS, cfg, epoch=1)
    changed = [
        {i for i, (a, b) in enumerate(zip(POSTS, p, strict=True)) if a != b}
        for p in (first, second)
    ]
    assert 0.3 < len(changed[0]) / len(POSTS) < 0.7  # about 1 - 0.7 * 0.7 of the posts
    assert changed[0] != changed[1], "the same posts stayed altered from one epoch to the next"
    assert perturb(POSTS, cfg, epoch=1) == second  # a resumed run sees the same draw


def test_replace_mode_trains_on_the_perturbed_posts(tokenizer) -> None:
    cfg = TrainConfig(consistency_weight=0.0, max_length=32)
    inputs = epoch_inputs(cfg, tokenizer, POSTS, np.zeros(len(POSTS)), epoch=0)
    perturbed = encode(tokenizer, perturb(POSTS, cfg, 0), np.zeros(len(POSTS)), 32)
    assert inputs.twins is None
    assert inputs.enc.features["input_ids"] == perturbed.features["input_ids"]


def test_consistency_mode_keeps_the_originals_and_adds_twins(tokenizer) -> None:
    cfg = TrainConfig(consistency_weight=1.0, max_length=32)
    inputs = epoch_inputs(cfg, tokenizer, POSTS, np.zeros(len(POSTS)), epoch=0)
    original = encode(tokenizer, POSTS, np.zeros(len(POSTS)), 32)
    assert inputs.enc.features["input_ids"] == original.features["input_ids"]
    assert inputs.twins is not None and inputs.has_twin is not None
    twin_ids, ids = inputs.twins.features["input_ids"], original.features["input_ids"]
    for i, flagged in enumerate(inputs.has_twin):
        assert (twin_ids[i] != ids[i]) == bool(flagged)
    assert 0.3 < inputs.has_twin.mean() < 0.7


@pytest.fixture(scope="module")
def tokenizer():
    from train_job.model import load_tokenizer, packaged_minilm

    return load_tokenizer(packaged_minilm())


def _tiny_model(tmp_path: Path):
    from tests.tiny_model import make_tiny_bert
    from train_job.model import load_classifier

    model = load_classifier(make_tiny_bert(tmp_path / "tiny", seed=0))
    with torch.no_grad():  # a fresh head's logits are near 0: widen them so predictions differ
        model.classifier.weight.mul_(300.0)
    model.eval()  # no dropout: the two calls must differ only by the KL term
    return model


def _step_loss(model, tokenizer, inputs, weight: float) -> float:
    return float(
        train_step(
            model,
            inputs.enc,
            list(range(16)),
            tokenizer.pad_token_id,
            torch.device("cpu"),
            torch.nn.CrossEntropyLoss(),
            torch.optim.SGD(model.parameters(), lr=0.0),
            inputs=inputs,
            weights=LossWeights(consistency=weight),
            precision="fp32",
        )
    )


def test_the_consistency_term_is_the_kl_between_post_and_twin(tmp_path: Path, tokenizer) -> None:
    from train_job.batching import predict_logits
    from train_job.epoch_inputs import EpochInputs

    labels = np.arange(16) % 2
    posts = encode(tokenizer, POSTS[:16], labels, 32)
    # Twins far from their posts, so the term is large enough to measure.
    others = encode(tokenizer, [f"{i} " + "lorem ipsum " * i for i in range(16)], labels, 32)
    inputs = EpochInputs(posts, others, np.arange(16) % 3 == 0)
    model = _tiny_model(tmp_path)
    plain = _step_loss(model, tokenizer, inputs, 0.0)
    weighted = _step_loss(model, tokenizer, inputs, 2.0)

    cpu = torch.device("cpu")
    rows = [i for i in range(16) if inputs.has_twin[i]]
    post = torch.log_softmax(
        torch.tensor(predict_logits(model, inputs.enc, 0, cpu, precision="fp32")[rows]), -1
    )
    twin = torch.log_softmax(
        torch.tensor(predict_logits(model, inputs.twins, 0, cpu, precision="fp32")[rows]), -1
    )
    kl = float((post.exp() * (post - twin)).sum(-1).mean())
    assert kl > 1e-4
    assert weighted - plain == pytest.approx(2.0 * kl, rel=1e-3, abs=1e-6)
    # Twins identical to their posts add nothing.
    same = type(inputs)(inputs.enc, inputs.enc, inputs.has_twin)
    assert _step_loss(model, tokenizer, same, 2.0) == pytest.approx(plain, abs=1e-6)


def test_twins_ride_in_the_same_padded_batch() -> None:
    from train_job.batching import collate

    enc = Encoded({"input_ids": [[1, 2], [3]]}, np.zeros(2), np.array([2, 1]), np.array([2, 1]))
    twins = Encoded(
        {"input_ids": [[1, 2, 9], [3]]}, np.zeros(2), np.array([3, 1]), np.array([3, 1])
    )
    batch = collate(enc, [0, 1], pad_id=0, extra=(twins, [0]))
    assert batch["input_ids"].tolist() == [[1, 2, 0], [3, 0, 0], [1, 2, 9]]
