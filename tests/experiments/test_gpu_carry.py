"""experiments/gpu_carry.py: base weights sent to a GPU machine come back the same, within fp16."""

from __future__ import annotations

import gzip
import shutil

import torch
from safetensors.torch import load, load_file, save_file

from experiments.gpu_carry import pinned, relative_l2_change, write_fp16_model


def test_fp16_weights_round_trip_and_integer_buffers_stay_exact(tiny_base_model, tmp_path) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_base_model, base)
    original = load_file(base / "model.safetensors")
    # The packaged MiniLM stores its position ids (int64) with the weights; the tiny one does not.
    original["embeddings.position_ids"] = torch.arange(64).unsqueeze(0)
    save_file(original, base / "model.safetensors")
    out = write_fp16_model(base, tmp_path / "minilm")
    sent = load(gzip.decompress(out.read_bytes()))
    assert sent.keys() == original.keys()
    for name, value in original.items():
        if value.is_floating_point():
            assert sent[name].dtype == torch.float16
            torch.testing.assert_close(sent[name].float(), value, rtol=1e-3, atol=1e-4)
        else:  # e.g. position_ids: an fp16 round trip would change their dtype
            assert sent[name].dtype == value.dtype and torch.equal(sent[name], value)
    assert (tmp_path / "minilm" / "config.json").is_file()
    assert (tmp_path / "minilm" / "tokenizer.json").is_file()
    assert out.read_bytes() == write_fp16_model(base, tmp_path / "again").read_bytes()
    assert 0 < relative_l2_change(base, out) < 1e-3  # fp16 keeps 11 mantissa bits


def test_the_wheels_sent_are_the_pinned_versions(tmp_path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("transformers==4.57.6\nhuggingface_hub==0.36.2\n# a comment\n")
    pins = pinned(constraints)
    assert pins["transformers"] == "4.57.6"
    assert pins["huggingface-hub"] == "0.36.2"
    assert pins["accelerate"] == "1.12.0"
