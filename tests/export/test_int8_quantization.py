"""int8 quantization of the exported graph: every weight MatMul quantized, or all but the
feed-forward output projections (the encoders whose int8 model fails the gate on them)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.onnx_export import ffn_output_matmuls, quantize_int8, quantize_model


@pytest.fixture(scope="module")
def fused(tiny_run: dict) -> tuple[Path, dict]:
    onnx_dir = Path(tiny_run["run_dir"]) / "onnx"
    return onnx_dir / "model_fused.onnx", json.loads((onnx_dir / "config.json").read_text())


def float_weight_matmuls(path: Path) -> dict[str, tuple[int, ...]]:
    """MatMul nodes that still read a float weight, with the weight's shape."""
    graph = onnx.load(str(path)).graph
    floats = {
        init.name: tuple(init.dims)
        for init in graph.initializer
        if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 2
    }
    return {
        node.name: floats[name]
        for node in graph.node
        if node.op_type == "MatMul"
        for name in node.input
        if name in floats
    }


def test_ffn_outputs_are_one_per_layer_and_map_intermediate_to_hidden(fused) -> None:
    path, config = fused
    names = ffn_output_matmuls(path, config["intermediate_size"], config["hidden_size"])
    assert len(names) == config["num_hidden_layers"]
    shapes = float_weight_matmuls(path)
    assert {shapes[name] for name in names} == {
        (config["intermediate_size"], config["hidden_size"])
    }


def test_equal_sizes_are_refused(fused) -> None:
    with pytest.raises(ValueError, match="ambiguous"):
        ffn_output_matmuls(fused[0], 32, 32)


def test_default_quantizes_every_weight_matmul(fused, tmp_path: Path) -> None:
    out, description = quantize_int8(fused[0], tmp_path)
    assert float_weight_matmuls(out) == {}
    assert "kept in fp32" not in description


def test_kept_projections_stay_fp32_and_the_rest_is_int8(fused, tmp_path: Path) -> None:
    path, config = fused
    keep = ffn_output_matmuls(path, config["intermediate_size"], config["hidden_size"])
    out, description = quantize_int8(path, tmp_path, keep_fp32=keep)
    assert set(float_weight_matmuls(out)) == set(keep)
    assert f"{len(keep)} nodes kept in fp32" in description
    # Both models run and answer the same shape on the same inputs.
    ids = np.array([[101, 2023, 2003, 1037, 3231, 102]], dtype=np.int64)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    feeds.update({i.name: np.zeros_like(ids) for i in session.get_inputs() if i.name not in feeds})
    logits = session.run(["logits"], feeds)[0]
    assert logits.shape == (1, 2) and np.isfinite(logits).all()


@pytest.mark.parametrize("ffn_output", ["int8", "fp32"])
def test_the_jobs_setting_picks_the_nodes(fused, tmp_path: Path, ffn_output: str) -> None:
    path, config = fused
    out, description = quantize_model(path, tmp_path, SimpleNamespace(**config), ffn_output)
    kept = set(float_weight_matmuls(out))
    if ffn_output == "int8":
        assert kept == set() and "feed-forward" not in description
    else:
        sizes = (config["intermediate_size"], config["hidden_size"])
        assert kept == set(ffn_output_matmuls(path, *sizes))
        assert "feed-forward output projections" in description
