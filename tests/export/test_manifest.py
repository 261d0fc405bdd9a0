"""The bundle manifest (export/manifest.py) from plain values: every field where the schema beside
it (export/manifest.schema.json) expects it, the same values in the same order for the same
inputs, and a bundle written with it passes the schema."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import onnx
import pytest
from onnx import TensorProto, helper

from export import bundle
from export.manifest import bundle_manifest

CREATED = time.struct_time((2026, 12, 6, 7, 0, 0, 6, 340, 0))


@pytest.fixture
def int8_model(tmp_path: Path) -> Path:
    """A one-node graph with the served model's input and output names."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [None, None])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [None, None])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, None])
    cast = helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(helper.make_graph([cast], "g", [ids, mask], [logits])), path)
    return path


def _manifest(int8_model: Path) -> dict:
    return bundle_manifest(
        int8_model=int8_model,
        quantization="dynamic int8 (MatMul)",
        labels=["real", "fake"],
        max_length=64,
        base_model="local/base",
        temperature=1.25,
        threshold=0.4,
        ood={"method": "mahalanobis", "threshold": 3.0, "params_file": "ood.npz"},
        dataset={"rows_by_source": {"a": {"train": 3}}, "sha256": "f00"},
        metrics={"int8": {"test": {"n": 3}}},
        training_config={"seed": 42, "run_id": "r1"},
        training={"history": [{"epoch": 1}], "best_epoch": 0, "teacher": None},
        run_id="r1",
    )


def test_the_manifest_holds_the_given_values_in_a_fixed_order(
    int8_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "gmtime", lambda *args: CREATED)
    manifest = _manifest(int8_model)
    version = "20261206T070000Z-" + bundle.sha256_file(int8_model)[:8]
    assert manifest == {
        "schema_version": 1,
        "version": version,
        "created_at": "2026-12-06T07:00:00Z",
        "labels": ["real", "fake"],
        "positive_label": "fake",
        "max_length": 64,
        "base_model": "local/base",
        "model_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "onnx": {
            "inputs": ["input_ids", "attention_mask"],
            "outputs": ["logits"],
            "quantization": "dynamic int8 (MatMul)",
        },
        "calibration": {"temperature": 1.25},
        "decision": {"threshold": 0.4, "objective": "balanced (val macro-F1, one-SE rule)"},
        "ood": {"method": "mahalanobis", "threshold": 3.0, "params_file": "ood.npz"},
        "baseline_file": "baseline.json",
        "report_file": "report.png",
        "dataset": {"rows_by_source": {"a": {"train": 3}}, "sha256": "f00"},
        "metrics": {"int8": {"test": {"n": 3}}},
        "training_config": {"seed": 42, "run_id": "r1"},
        "training": {"best_epoch": 0, "teacher": None, "history": [{"epoch": 1}]},
        "packages": bundle.package_versions(),
        "run_id": "r1",
    }
    # The history goes last in `training`, after the loop's other results.
    assert list(manifest["training"]) == ["best_epoch", "teacher", "history"]
    assert list(manifest)[:3] == ["schema_version", "version", "created_at"]
    assert manifest == _manifest(int8_model)  # nothing else (a clock, a random draw) enters


def test_a_bundle_written_with_the_manifest_passes_the_schema(
    int8_model: Path, tmp_path: Path
) -> None:
    files = {"model.onnx": int8_model}
    for name in ("tokenizer.json", "baseline.json", "report.png"):
        (tmp_path / name).write_text("{}")
        files[name] = tmp_path / name
    written = bundle.write_bundle(tmp_path / "bundle", files, _manifest(int8_model))
    schema = json.loads(bundle.SCHEMA_PATH.read_text())
    jsonschema.validate(written, schema)
    on_disk = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert on_disk == written and set(on_disk["files"]) == set(files)


def test_a_manifest_that_breaks_the_schema_is_refused(int8_model: Path, tmp_path: Path) -> None:
    manifest = _manifest(int8_model) | {"positive_label": "real"}
    with pytest.raises(jsonschema.ValidationError):
        bundle.write_bundle(tmp_path / "bundle", {"model.onnx": int8_model}, manifest)
