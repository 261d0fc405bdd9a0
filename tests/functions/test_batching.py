"""Batching, sorting, padding, truncation and calibrated outputs of the model module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving_core.bundle import fetch_bundle
from serving_core.calibration import CalibrationMap
from serving_core.model import Model, OodDetector, logistic_pair, plan_batches


class RecordingSession:
    """Wraps the real onnxruntime session and records the shape of every call."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.calls: list[dict[str, np.ndarray]] = []

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def run(self, output_names: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.calls.append({name: array.copy() for name, array in feeds.items()})
        return self.session.run(output_names, feeds)


@pytest.fixture(scope="module")
def model(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Model:
    bundle = fetch_bundle(str(tiny_bundle), tmp_path_factory.mktemp("cache"))
    loaded = Model.load(bundle, intra_op_threads=1, max_batch_size=4, max_batch_tokens=10_000)
    loaded.session = RecordingSession(loaded.session)
    return loaded


def test_plan_batches_sorts_by_length_and_respects_both_caps() -> None:
    lengths = [50, 3, 20, 7, 3, 100]
    batches = plan_batches(lengths, max_batch_size=2, max_batch_tokens=1000)
    assert [i for batch in batches for i in batch] == sorted(range(6), key=lambda i: lengths[i])
    assert all(len(batch) <= 2 for batch in batches)
    # Token cap: 3 texts of 100 tokens do not fit in 250 padded tokens; a lone text always runs.
    assert plan_batches([100, 100, 100], max_batch_size=8, max_batch_tokens=250) == [[0, 1], [2]]
    assert plan_batches([600], max_batch_size=8, max_batch_tokens=10) == [[0]]
    assert plan_batches([], max_batch_size=8, max_batch_tokens=10) == []


def test_one_call_per_chunk_padded_only_to_its_longest(model: Model) -> None:
    texts = ["covid " * n + "vaccine" for n in (40, 1, 12, 3, 25, 2, 7)]
    model.session.calls.clear()
    predictions = model.predict(texts)
    calls = model.session.calls
    assert len(calls) == 2  # 7 texts, at most 4 per call
    lengths = sorted(len(model.encode([t])[0].ids) for t in texts)
    widths = [call["input_ids"].shape[1] for call in calls]
    assert widths == [lengths[3], lengths[6]]  # each call as wide as its own longest text only
    for call in calls:
        mask = call["attention_mask"]
        assert mask[:, -1].any()  # some row uses the last column: no padding beyond the longest
        assert (mask.sum(axis=1) == np.sort(mask.sum(axis=1))).all()  # sorted by length
    # Answers come back in request order: each matches the text predicted on its own (token
    # counts exactly; probabilities closely, as dynamic int8 quantizes activations per call).
    for text, prediction in zip(texts, predictions, strict=True):
        alone = model.predict([text])[0]
        assert alone.token_count == prediction.token_count
        assert alone.probabilities["fake"] == pytest.approx(
            prediction.probabilities["fake"], abs=0.01
        )


def test_long_text_is_truncated_and_counted_in_full(model: Model) -> None:
    short, long = model.predict(["masks work", "lockdown " * 1000])
    assert not short.truncated and short.token_count < model.max_length
    assert long.truncated
    assert long.token_count > 1000  # counted before truncation
    model.session.calls.clear()
    model.predict(["lockdown " * 1000])
    assert model.session.calls[0]["input_ids"].shape[1] == model.max_length


def test_exactly_max_length_is_not_truncated(model: Model) -> None:
    words = 1
    while len(model.encode(["flu " * words])[0].ids) < model.max_length:
        words += 1
    (encoded,) = model.encode(["flu " * words])
    assert len(encoded.ids) == model.max_length
    assert encoded.truncated is (encoded.token_count > model.max_length)


def test_calibration_threshold_and_ood_follow_the_manifest(model: Model, tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    (prediction,) = model.predict(["The WHO says hand washing reduces infections."])
    assert set(prediction.probabilities) == set(manifest["labels"])
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0)
    fake = prediction.probabilities["fake"]
    assert prediction.label == ("fake" if fake >= manifest["decision"]["threshold"] else "real")
    assert prediction.label_probability == prediction.probabilities[prediction.label]
    if manifest.get("ood"):
        assert prediction.ood_score is not None
        assert prediction.in_domain == (prediction.ood_score < manifest["ood"]["threshold"])
    else:
        assert prediction.ood_score is None and prediction.in_domain is None


def test_threshold_moves_the_label(model: Model) -> None:
    text = "5G towers spread the virus"
    fake = model.predict([text])[0].probabilities["fake"]
    original = model.threshold
    try:
        model.threshold = fake  # P(fake) >= threshold -> fake
        assert model.predict([text])[0].label == "fake"
        model.threshold = min(1.0, fake + 1e-6)
        assert model.predict([text])[0].label == "real"
    finally:
        model.threshold = original


def test_probabilities_are_the_two_label_softmax_even_at_extreme_margins() -> None:
    for margin in (0.0, 2.0, -2.0, 35.0, -35.0, 800.0, -800.0):
        logits = np.array([margin, 0.0])  # softmax over (positive, negative) logits
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        positive, negative = logistic_pair(margin)
        assert positive == pytest.approx(expected[0], rel=1e-12, abs=0)
        assert negative == pytest.approx(expected[1], rel=1e-12, abs=0)  # no 1 - p rounding
    assert all(np.isnan(logistic_pair(float("nan"))))


def test_temperature_scales_the_margin(model: Model) -> None:
    text = "Masks reduce the spread of the virus"
    original = model.temperature
    try:
        sharp = model.predict([text])[0].probabilities
        model.temperature = original * 4
        flat = model.predict([text])[0].probabilities
    finally:
        model.temperature = original
    assert abs(flat["fake"] - 0.5) < abs(sharp["fake"] - 0.5)


def test_a_calibration_map_replaces_the_temperature(model: Model) -> None:
    texts = ["Masks reduce the spread of the virus", "5G towers spread the virus", "Hello"]
    by_temperature = [p.probabilities["fake"] for p in model.predict(texts)]
    assert model.calibration_map is None
    try:  # a map that serves 0.2 below every margin seen and 0.9 above
        model.calibration_map = CalibrationMap(np.array([-1e6, 1e6]), np.array([0.2, 0.9]))
        mapped = model.predict(texts)
    finally:
        model.calibration_map = None
    for prediction in mapped:
        assert 0.2 <= prediction.probabilities["fake"] <= 0.9
        assert prediction.probabilities["real"] == pytest.approx(
            1 - prediction.probabilities["fake"]
        )
    assert [p.probabilities["fake"] for p in model.predict(texts)] == by_temperature


def test_token_count_of_a_cut_text_is_its_uncut_length(model: Model, tiny_bundle: Path) -> None:
    from tokenizers import Tokenizer

    uncut = Tokenizer.from_file(str(tiny_bundle / "tokenizer.json"))
    uncut.no_truncation()
    texts = ["lockdown " * 300, "Vaccines https://t.co/abc @who " * 40, "word " * 3, "😷" * 500]
    for encoded, text in zip(model.encode(texts), texts, strict=True):
        assert encoded.token_count == len(uncut.encode(text).ids)
    (alone,) = model.encode([texts[1]])  # the one-text path counts the same way
    assert alone.token_count == len(uncut.encode(texts[1]).ids)


def test_mahalanobis_score() -> None:
    mean = np.array([1.0, 0.0], dtype=np.float32)
    precision = np.array([[2.0, 0.0], [0.0, 0.5]], dtype=np.float32)
    detector = OodDetector("mahalanobis", 3.0, {"mean": mean, "precision": precision})
    pooled = np.array([[1.0, 0.0], [2.0, 2.0]], dtype=np.float32)
    scores = detector.ood_scores(np.zeros((2, 2)), pooled)
    assert scores.tolist() == pytest.approx([0.0, 2.0 * 1 + 0.5 * 4])


def test_one_text_per_call_makes_each_answer_depend_on_its_text_alone(
    tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Dynamic int8 quantization takes one activation scale per call, so a text batched with
    others can get a slightly different score than alone; MAX_BATCH_SIZE=1 removes that."""
    bundle = fetch_bundle(str(tiny_bundle), tmp_path_factory.mktemp("cache"))
    one_by_one = Model.load(bundle, intra_op_threads=1, max_batch_size=1, max_batch_tokens=10_000)
    texts = [
        "Garlic water cures the virus in one night, nurses say",
        "Officials report 312 new cases and two deaths in the county",
        "a much longer text " * 12,
        "ok",
    ]
    together = one_by_one.predict(texts)
    for text, answer in zip(texts, together, strict=True):
        assert one_by_one.predict([text])[0].probabilities == answer.probabilities
