"""Distillation: teacher logits on the training posts, cached in the store, and the student's
loss that mixes them with the labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from artifact_store import LocalStore
from train_job import distill
from train_job.augment import first_sentence
from train_job.batching import encode
from train_job.epoch_inputs import EpochInputs, TeacherLogits, epoch_inputs
from train_job.losses import LossWeights, train_step

TEXTS = [f"post number {i} about vaccines" for i in range(40)]


@pytest.fixture(scope="module")
def hf_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real/fake classifier saved as a Hugging Face folder."""
    from tests.tiny_model import make_tiny_bert
    from train_job.model import load_classifier, load_tokenizer

    tmp = tmp_path_factory.mktemp("teacher")
    base = make_tiny_bert(tmp / "base", seed=1)
    out = tmp / "teacher"
    load_classifier(base).save_pretrained(out)
    load_tokenizer(base).save_pretrained(out)
    return out


def test_teacher_logits_are_cached_in_the_store(hf_teacher: Path, tmp_path: Path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    logits, record = distill.teacher_logits(str(hf_teacher), TEXTS, 32, store, tmp_path)
    assert logits.shape == (len(TEXTS), 2) and np.isfinite(logits).all()
    assert record["kind"] == "hf" and store.exists(record["logits_cache"])

    def no_scoring(*args, **kwargs):
        raise AssertionError("the teacher was scored again although its logits are cached")

    monkeypatch.setattr(distill, "score_teacher", no_scoring)
    again, _ = distill.teacher_logits(str(hf_teacher), TEXTS, 32, store, tmp_path)
    np.testing.assert_array_equal(again, logits)
    # Other posts or another max length are another cache entry.
    with pytest.raises(AssertionError, match="scored again"):
        distill.teacher_logits(str(hf_teacher), TEXTS[:-1], 32, store, tmp_path)


def test_a_teacher_is_scored_in_fp32_on_any_machine(hf_teacher: Path, monkeypatch) -> None:
    """Cached logits are keyed by teacher and texts only, so they must not depend on whether the
    scoring machine has bf16: with bf16 reported, the answers equal those scored without it."""
    from train_job import device

    monkeypatch.setattr(device, "native_bf16", lambda device: False)
    without_bf16 = distill.score_teacher(hf_teacher, TEXTS, 32)
    monkeypatch.setattr(device, "native_bf16", lambda device: True)
    np.testing.assert_array_equal(distill.score_teacher(hf_teacher, TEXTS, 32), without_bf16)


def test_a_bundle_teacher_is_scored_as_served(tiny_bundle: Path) -> None:
    identity = distill.teacher_identity(tiny_bundle)
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert identity["kind"] == "bundle" and identity["id"] == manifest["version"]
    assert identity["official_test_weighted_f1"] is not None
    assert distill.score_teacher(tiny_bundle, TEXTS[:5], 32).shape == (5, 2)


def test_a_folder_that_is_no_classifier_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither a bundle"):
        distill.fetch_teacher(str(tmp_path), tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"0": "LABEL_0"}}))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(distill.TeacherError, match="real/fake classifier"):
        distill.score_teacher(tmp_path, TEXTS, 32)


def test_student_loss_mixes_labels_and_the_teachers_soft_targets(hf_teacher: Path) -> None:
    from train_job.model import load_classifier, load_tokenizer

    tokenizer = load_tokenizer(hf_teacher)
    labels = np.arange(16) % 2
    enc = encode(tokenizer, TEXTS[:16], labels, 32)
    teacher = np.random.default_rng(0).normal(0, 3, size=(16, 2)).astype(np.float32)
    model = load_classifier(hf_teacher, fresh_head=False)
    model.eval()  # no dropout, so the three losses below see the same logits

    def step(weights: LossWeights) -> float:
        return float(
            train_step(
                model,
                enc,
                list(range(16)),
                tokenizer.pad_token_id,
                torch.device("cpu"),
                torch.nn.CrossEntropyLoss(),
                torch.optim.SGD(model.parameters(), lr=0.0),
                inputs=EpochInputs(enc, teacher=teacher),
                weights=weights,
                precision="fp32",
            )
        )

    hard = step(LossWeights(distill=0.0))
    only_teacher = step(LossWeights(distill=1.0, temperature=2.0))
    mixed = step(LossWeights(distill=0.25, temperature=2.0))
    from train_job.batching import predict_logits

    student = (
        torch.tensor(predict_logits(model, enc, 0, torch.device("cpu"), precision="fp32")) / 2.0
    )
    target = torch.log_softmax(torch.tensor(teacher) / 2.0, -1)
    kl = float((target.exp() * (target - torch.log_softmax(student, -1))).sum(-1).mean()) * 4.0
    assert only_teacher == pytest.approx(kl, rel=1e-3)
    assert mixed == pytest.approx(0.75 * hard + 0.25 * kl, rel=1e-3)


def test_the_job_records_its_teacher_in_the_bundle(
    tiny_base_model: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    from tests.conftest import tiny_config
    from train_job.pipeline import run

    cfg = tiny_config(
        tiny_base_model,
        tmp_path,
        teacher=str(tiny_bundle),
        teacher_headlines=0.5,
        max_train_examples=200,
        epochs=1,
    )
    summary = run(cfg)
    manifest = json.loads((Path(summary["bundle_dir"]) / "manifest.json").read_text())
    teacher = manifest["training"]["teacher"]
    assert teacher["source"] == str(tiny_bundle) and teacher["kind"] == "bundle"
    store = LocalStore(tmp_path / "store")
    assert store.exists(teacher["logits_cache"])
    assert store.exists(teacher["headline_logits_cache"])
    assert teacher["headline_logits_cache"] != teacher["logits_cache"]


POSTS = [
    "Masks cut transmission by half. New data from 12 states: https://t.co/abcdefghij #COVID19",
    "Garlic cures the virus!",
    "@WHO says: wash your hands often. Details in our thread.",
    "A single sentence without anything to cut",
]


def test_first_sentence_twins_are_the_drawn_posts_that_a_cut_changes(hf_teacher: Path) -> None:
    from train_job.config import TrainConfig
    from train_job.model import load_tokenizer

    tokenizer = load_tokenizer(hf_teacher)
    labels = np.array([0, 1, 0, 0])
    teacher = TeacherLogits(np.zeros((4, 2), np.float32), np.ones((4, 2), np.float32))
    cfg = TrainConfig(teacher="t", teacher_headlines=1.0, link_augmentation=0.0)
    inputs = epoch_inputs(cfg, tokenizer, POSTS, labels, 0, teacher)
    assert inputs.has_twin.tolist() == [True, False, True, False]
    assert inputs.twin_teacher is teacher.first_sentences and inputs.teacher is teacher.posts
    cut = tokenizer.decode(inputs.twins.features["input_ids"][0], skip_special_tokens=True)
    assert cut == first_sentence(POSTS[0]).lower() == "masks cut transmission by half."
    none = epoch_inputs(
        TrainConfig(teacher="t", teacher_headlines=0.0), tokenizer, POSTS, labels, 0, teacher
    )
    assert not none.has_twin.any()


def test_first_sentence_twins_learn_only_the_teachers_answer_on_them(hf_teacher: Path) -> None:
    from train_job.batching import predict_logits
    from train_job.losses import distill_loss
    from train_job.model import load_classifier, load_tokenizer

    tokenizer = load_tokenizer(hf_teacher)
    labels = np.array([0, 1, 0, 0])
    enc = encode(tokenizer, POSTS, labels, 32)
    cuts = encode(tokenizer, [first_sentence(p) for p in POSTS], labels, 32)
    rng = np.random.default_rng(1)
    posts_t, cuts_t = (rng.normal(0, 3, size=(4, 2)).astype(np.float32) for _ in range(2))
    model = load_classifier(hf_teacher, fresh_head=False)
    model.eval()
    has_twin = np.array([True, False, True, False])
    inputs = EpochInputs(enc, cuts, has_twin, teacher=posts_t, twin_teacher=cuts_t)
    loss = train_step(
        model,
        enc,
        [0, 1, 2, 3],
        tokenizer.pad_token_id,
        torch.device("cpu"),
        torch.nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.0),
        inputs=inputs,
        weights=LossWeights(distill=0.5, temperature=2.0),
        precision="fp32",
    )
    on_posts = torch.tensor(predict_logits(model, enc, 0, torch.device("cpu"), precision="fp32"))
    on_cuts = torch.tensor(predict_logits(model, cuts, 0, torch.device("cpu"), precision="fp32"))[
        [0, 2]
    ]
    hard = float(torch.nn.functional.cross_entropy(on_posts, torch.as_tensor(labels)))
    expected = (
        0.5 * hard
        + 0.5 * float(distill_loss(on_posts, posts_t, 2.0))
        + 0.5 * float(distill_loss(on_cuts, cuts_t[[0, 2]], 2.0))
    )
    assert float(loss) == pytest.approx(expected, rel=1e-3)


def test_relation_loss_sees_only_the_geometry_of_the_states() -> None:
    from train_job.losses import relation_loss

    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(6, 8)).astype(np.float32)
    # A wider student whose states are the teacher's rotated and scaled: the same cosines.
    rotation, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    same = np.hstack([teacher, np.zeros((6, 4), np.float32)]) @ rotation * 3.0
    assert float(relation_loss(torch.tensor(same, dtype=torch.float32), teacher)) < 1e-10
    other = torch.tensor(rng.normal(size=(6, 12)), dtype=torch.float32)
    assert float(relation_loss(other, teacher)) > 1e-3


def test_the_hidden_state_term_is_added_at_its_own_weight_beside_the_soft_targets(
    hf_teacher: Path,
) -> None:
    from train_job.losses import relation_loss
    from train_job.model import load_classifier, load_tokenizer

    tokenizer = load_tokenizer(hf_teacher)
    enc = encode(tokenizer, TEXTS[:8], np.arange(8) % 2, 32)
    rng = np.random.default_rng(2)
    states = rng.normal(size=(8, 16)).astype(np.float32)
    logits = rng.normal(0, 3, size=(8, 2)).astype(np.float32)
    model = load_classifier(hf_teacher, fresh_head=False)
    model.eval()  # no dropout: the two steps and the direct pass see the same states

    def step(hidden: float) -> float:
        return float(
            train_step(
                model,
                enc,
                list(range(8)),
                tokenizer.pad_token_id,
                torch.device("cpu"),
                torch.nn.CrossEntropyLoss(),
                torch.optim.SGD(model.parameters(), lr=0.0),
                inputs=EpochInputs(enc, teacher=logits, teacher_states=states),
                weights=LossWeights(distill=0.5, temperature=2.0, hidden=hidden),
                precision="fp32",
            )
        )

    from train_job.batching import collate

    with torch.no_grad():
        out = model(
            **collate(enc, list(range(8)), tokenizer.pad_token_id), output_hidden_states=True
        )
    term = float(relation_loss(out.hidden_states[-1][:, 0], states))
    assert term > 1e-4
    assert step(2.0) - step(0.0) == pytest.approx(2.0 * term, rel=1e-3)


def test_teacher_states_are_cached_and_need_a_folder_not_a_bundle(
    hf_teacher: Path, tiny_bundle: Path, tmp_path: Path, monkeypatch
) -> None:
    store = LocalStore(tmp_path / "store")
    states, key = distill.teacher_states(str(hf_teacher), TEXTS, 32, store, tmp_path)
    assert states.shape == (len(TEXTS), 32) and np.isfinite(states).all()
    assert key.startswith("teacher_states/") and store.exists(key)
    _, record = distill.teacher_logits(str(hf_teacher), TEXTS, 32, store, tmp_path)
    assert record["logits_cache"] != key

    def no_scoring(*args, **kwargs):
        raise AssertionError("the teacher was scored again although its states are cached")

    monkeypatch.setattr(distill, "score_teacher_states", no_scoring)
    again, _ = distill.teacher_states(str(hf_teacher), TEXTS, 32, store, tmp_path)
    np.testing.assert_array_equal(again, states)
    with pytest.raises(distill.TeacherError, match="Hugging Face folder"):
        distill.teacher_states(str(tiny_bundle), TEXTS, 32, store, tmp_path)


def test_the_job_records_the_teachers_states_cache(
    tiny_base_model: Path, hf_teacher: Path, tmp_path: Path
) -> None:
    from tests.conftest import tiny_config
    from train_job.pipeline import run

    cfg = tiny_config(
        tiny_base_model,
        tmp_path,
        teacher=str(hf_teacher),
        teacher_hidden=1.0,
        max_train_examples=200,
        epochs=1,
        export=False,
    )
    teacher = run(cfg)["train"]["teacher"]
    assert teacher["kind"] == "hf"
    assert LocalStore(tmp_path / "store").exists(teacher["states_cache"])
    assert teacher["states_cache"].startswith("teacher_states/")
