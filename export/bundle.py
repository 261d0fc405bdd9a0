"""Assemble a model bundle folder: files first, then manifest.json with every file's sha256.

The manifest's shape is the contract in export/manifest.schema.json; it is validated here, by the
writer, so a bundle that breaks the contract is never published.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from importlib import metadata
from pathlib import Path

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
PACKAGES = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "tokenizers")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def write_tokenizer(hf_tokenizer, max_length: int, path: Path) -> Path:
    """tokenizer.json with truncation and padding set explicitly: a saved tokenizer silently keeps
    whatever settings it had when it was saved. Padding is to the longest text of a batch only."""
    backend = hf_tokenizer.backend_tokenizer
    backend.enable_truncation(max_length=max_length)
    backend.enable_padding(pad_id=hf_tokenizer.pad_token_id, pad_token=hf_tokenizer.pad_token)
    backend.save(str(path))
    return path


def new_version(model_path: Path) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + sha256_file(model_path)[:8]


def write_bundle(out_dir: Path, files: dict[str, Path], manifest: dict) -> dict:
    """Copy `files` (bundle name -> source) into out_dir, then write manifest.json last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        if source.resolve() != (out_dir / name).resolve():
            shutil.copyfile(source, out_dir / name)
    manifest = dict(manifest)
    manifest["files"] = {
        name: {"sha256": sha256_file(out_dir / name), "bytes": (out_dir / name).stat().st_size}
        for name in sorted(files)
    }
    jsonschema.validate(manifest, json.loads(SCHEMA_PATH.read_text()))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest
