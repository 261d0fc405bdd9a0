"""Distillation stage: a stronger teacher's logits on the training posts, cached in the store.

The teacher is a fine-tuned real/fake classifier: a bundle folder (its ONNX model scored as
served) or a Hugging Face folder, local or gs://. A teacher is made by the job itself with
another base model, e.g. `--base-model local/teacher/all-mpnet-base-v2` (`make teacher-model`);
it never ships. Its logits on the training posts are computed once per (teacher, posts, max
length) and kept under `teacher_logits/` in the store, so another student seed or recipe does not
score the teacher again.

The student's loss is then (1 - w) * cross-entropy + w * T^2 * KL(teacher_T || student_T), with
both sides' logits divided by the temperature T (Hinton et al., 2015).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from export.store import Store, open_store

log = logging.getLogger(__name__)

CACHE_PREFIX = "teacher_logits"


def fetch_teacher(spec: str, work_dir: Path) -> Path:
    """A local folder for the teacher: gs:// prefixes are downloaded into work_dir."""
    if not spec.startswith("gs://"):
        folder = Path(spec)
    else:
        store, folder = open_store(spec), work_dir / "teacher"
        keys = store.list("")
        if not keys:
            raise FileNotFoundError(f"no files under {spec}")
        for key in keys:
            store.download_file(key, folder / key)
    if not ((folder / "manifest.json").is_file() or (folder / "config.json").is_file()):
        raise FileNotFoundError(
            f"{spec} is neither a bundle (manifest.json) nor a Hugging Face folder (config.json)"
        )
    return folder


def teacher_identity(folder: Path) -> dict:
    """What names this teacher in caches and manifests: a bundle's version and scores, or the
    sha256 of a Hugging Face folder's weights."""
    manifest_file = folder / "manifest.json"
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text())
        official = manifest.get("metrics", {}).get("int8", {}).get("test_official", {})
        return {
            "kind": "bundle",
            "id": manifest["version"],
            "base_model": manifest.get("base_model"),
            "official_test_weighted_f1": official.get("weighted_f1"),
            "cross_source": manifest.get("trust", {}).get("cross_source"),
        }
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not weights:
        raise FileNotFoundError(f"{folder}: no weights (*.safetensors or *.bin)")
    digest = hashlib.sha256()
    for file in weights:
        with file.open("rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    config = json.loads((folder / "config.json").read_text())
    return {"kind": "hf", "id": digest.hexdigest()[:16], "base_model": config.get("_name_or_path")}


def cache_key(identity: dict, texts: list[str], max_length: int) -> str:
    digest = hashlib.sha256(json.dumps([identity["id"], max_length, texts]).encode())
    return f"{CACHE_PREFIX}/{digest.hexdigest()[:24]}.npy"


def score_teacher(folder: Path, texts: list[str], max_length: int) -> np.ndarray:
    """The teacher's logits [n, 2] (class 0 real, 1 fake) on `texts`."""
    if (folder / "manifest.json").is_file():
        from train_job.trust_eval import BundleScorer

        return BundleScorer(folder).logits_and_ood(texts)[0]
    import torch

    from train_job.model import load_classifier, load_tokenizer
    from train_job.train import encode, pick_device, predict_logits

    labels = json.loads((folder / "config.json").read_text()).get("id2label", {})
    if labels != {"0": "real", "1": "fake"}:
        raise ValueError(f"{folder}: the teacher must be a real/fake classifier, has {labels}")
    tokenizer = load_tokenizer(folder, placeholders=False)  # as saved with the teacher
    model = load_classifier(folder, fresh_head=False)
    device = pick_device("auto")
    model.to(device)
    enc = encode(tokenizer, texts, np.zeros(len(texts)), max_length)
    with torch.inference_mode():
        return predict_logits(model, enc, tokenizer.pad_token_id or 0, device)


def teacher_logits(
    spec: str, texts: list[str], max_length: int, store: Store, work_dir: Path
) -> tuple[np.ndarray, dict]:
    """The teacher's logits on the training posts, from the store's cache when it has them."""
    folder = fetch_teacher(spec, work_dir)
    identity = teacher_identity(folder)
    key = cache_key(identity, texts, max_length)
    if store.exists(key):
        logits = np.load(io.BytesIO(store.read_bytes(key)))
        log.info("teacher %s: logits from the cache %s", identity["id"], key)
    else:
        log.info("teacher %s: scoring %d training posts", identity["id"], len(texts))
        logits = score_teacher(folder, texts, max_length).astype(np.float32)
        buffer = io.BytesIO()
        np.save(buffer, logits)
        store.write_bytes(key, buffer.getvalue())
    return logits, {"source": spec, **identity, "logits_cache": key}
