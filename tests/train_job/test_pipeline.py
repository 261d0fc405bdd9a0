"""End to end on a tiny random BERT: train, export, quantize, gate, bundle, publish."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from artifact_store import LocalStore
from export.publish import list_versions, read_pointer
from tests.conftest import ROOT, tiny_config
from tests.train_job.test_data import FIXTURES
from train_job.pipeline import run


def test_bundle_matches_the_manifest_contract(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    schema = json.loads((ROOT / "export/manifest.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    for name, meta in manifest["files"].items():
        data = (tiny_bundle / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == meta["sha256"]
        assert len(data) == meta["bytes"]
    assert {"model.onnx", "tokenizer.json", "baseline.json", "report.png", "ood.npz"} <= set(
        manifest["files"]
    )
    assert manifest["labels"] == ["real", "fake"]
    assert manifest["dataset"]["files_sha256"]["Constraint_Train.csv"].startswith("441f3985")
    assert manifest["training_config"]["max_train_examples"] == 600
    assert "torch" in manifest["packages"] and "onnxruntime" in manifest["packages"]
    assert manifest["calibration"]["temperature"] > 0
    assert 0 < manifest["decision"]["threshold"] < 1
    for precision in ("fp32", "int8"):
        test = manifest["metrics"][precision]["test"]
        assert {"accuracy", "macro_f1", "weighted_f1", "roc_auc", "ece", "per_class"} <= set(test)
        assert sum(map(sum, test["confusion_matrix"])) == test["n"]


def test_tokenizer_truncates_and_pads_only_to_the_longest(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(tiny_bundle / "tokenizer.json"))
    assert tok.truncation["max_length"] == manifest["max_length"]
    assert tok.padding is not None and tok.padding["length"] is None  # pad to longest, not fixed
    short, long = tok.encode_batch(["fake news", "word " * 500])
    assert len(short.ids) == len(long.ids) == manifest["max_length"]
    (alone,) = tok.encode_batch(["fake news"])
    assert len(alone.ids) == 4  # [CLS] fake news [SEP]: no padding for a batch of one
    # Links and handles are normalised inside the tokenizer, so serving needs no extra code.
    a, b = tok.encode_batch(["@CDCgov says https://t.co/Ab12", "@who says http://x.org/y?z=1"])
    assert a.tokens == b.tokens == ["[CLS]", "@", "user", "says", "http", "[SEP]"]


def test_onnx_model_has_dynamic_axes_and_both_outputs(tiny_bundle: Path) -> None:
    session = ort.InferenceSession(str(tiny_bundle / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["logits", "pooled"]
    names = [i.name for i in session.get_inputs()]
    for batch, width in ((1, 5), (3, 17)):
        feed = {n: np.ones((batch, width), dtype=np.int64) for n in names}
        logits, pooled = session.run(None, feed)
        assert logits.shape == (batch, 2) and pooled.shape[0] == batch


def test_baseline_has_the_distributions_monitoring_needs(tiny_bundle: Path) -> None:
    baseline = json.loads((tiny_bundle / "baseline.json").read_text())
    assert len(baseline["score_hist"]) == len(baseline["score_bins"]) - 1
    assert abs(sum(baseline["score_hist"]) - 1) < 1e-4
    assert abs(sum(baseline["token_length_hist"]) - 1) < 1e-4
    assert abs(sum(baseline["label_ratio"].values()) - 1) < 1e-4


def test_published_and_promoted(tiny_run: dict, tiny_store: Path) -> None:
    store = LocalStore(tiny_store)
    assert list_versions(store) == [tiny_run["version"]]
    assert read_pointer(store)["version"] == tiny_run["version"]
    assert store.exists(f"runs/{tiny_run['run_id']}/checkpoint/state.pt")
    assert store.exists(f"runs/{tiny_run['run_id']}/config.json")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--precision", "fp16"), "--precision must be one of"),
        (("--teacher-hidden", "1"), "--teacher-hidden needs --teacher"),
    ],
)
def test_bad_configuration_exits_2_with_a_message(args: tuple[str, ...], message: str) -> None:
    result = _job(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_restarted_run_resumes_from_its_checkpoint(tiny_base_model: Path, tmp_path: Path) -> None:
    first = run(tiny_config(tiny_base_model, tmp_path, epochs=1, run_id="retry-me", export=False))
    assert first["train"]["resumed_from_epoch"] is None
    assert len(first["train"]["history"]) == 1
    # Same run id (a retried Cloud Run task), more epochs: picks up after epoch 1.
    again = run(tiny_config(tiny_base_model, tmp_path, epochs=2, run_id="retry-me", export=False))
    assert again["train"]["resumed_from_epoch"] == 0
    assert [h["epoch"] for h in again["train"]["history"]] == [1, 2]
    assert again["train"]["history"][0] == first["train"]["history"][0]


def test_same_seed_same_model_whatever_used_the_generator_before(
    tiny_base_model: Path, tmp_path: Path
) -> None:
    import shutil

    import torch
    from transformers import BertModel

    # Like the packaged MiniLM: an encoder without a classification head, so the job makes one.
    headless = tmp_path / "headless"
    shutil.copytree(tiny_base_model, headless)
    BertModel.from_pretrained(tiny_base_model).save_pretrained(headless)

    first = run(tiny_config(headless, tmp_path / "a", epochs=1, export=False))
    torch.rand(1000)  # an earlier test, a notebook cell: the global generator has moved on
    second = run(tiny_config(headless, tmp_path / "b", epochs=1, export=False))
    # The new classification head is initialised from the run's seed too, not from whatever
    # state the process was in.
    assert second["train"]["history"][0]["train_loss"] == first["train"]["history"][0]["train_loss"]
    assert second["train"]["best_val_macro_f1"] == first["train"]["best_val_macro_f1"]


def _job(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "train_job", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "FND_LAST_RUN_FILE": ""},
    )


def test_bad_data_exits_2_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    result = _job("--data", str(FIXTURES / "unknown_labels/posts.csv"), "--store", str(tmp_path))
    assert result.returncode == 2
    assert "unknown label values" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_failed_gate_exits_4_and_publishes_nothing(tiny_base_model: Path, tmp_path: Path) -> None:
    # Agreement can never exceed 1.0, so this gate always fails.
    result = _job(
        "--base-model", str(tiny_base_model), "--max-train-examples", "100", "--epochs", "1",
        "--max-length", "32", "--store", str(tmp_path / "store"),
        "--work-dir", str(tmp_path / "runs"), "--gate-min-agreement", "1.01",
    )  # fmt: skip
    assert result.returncode == 4, result.stderr[-2000:]
    assert "accuracy gate failed" in result.stderr
    assert not (tmp_path / "store/models").exists()
    metrics = next((tmp_path / "runs").glob("*/metrics.json"))
    assert json.loads(metrics.read_text())["gate"]["passed"] is False
