"""Distillation stage: a stronger teacher's logits on the training posts, cached in the store.

The teacher is a fine-tuned real/fake classifier: a bundle folder (its ONNX model scored as
served) or a Hugging Face folder, local or gs://. A teacher is made by the job itself with
another base model, e.g. `--base-model local/teacher/all-mpnet-base-v2` (`make teacher-model`);
it never ships. Its logits on the training posts are computed once per (teacher, posts, max
length) and kept under `teacher_logits/` in the store, so another student seed or recipe does not
score the teacher again.

The student's loss is then (1 - w) * cross-entropy + w * T^2 * KL(teacher_T || student_T), with
both sides' logits divided by the temperature T (Hinton et al., 2015).

Hidden-state transfer (`--teacher-hidden`) also needs the teacher's last-layer state of the first
token on every post, the vector its classification head reads; it is cached the same way under
`teacher_states/`. A bundle keeps only logits and a middle-layer feature, so this takes the
teacher as a Hugging Face folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import torch

from artifact_store import Store, open_store
from train_job.batching import bucketed_batches, collate, encode, predict_logits, to_device
from train_job.device import pick_device
from train_job.model import load_classifier, load_tokenizer
from train_job.trust_eval import BundleScorer

log = logging.getLogger(__name__)

CACHE_PREFIX = {"logits": "teacher_logits", "states": "teacher_states"}


class TeacherError(ValueError):
    """The teacher cannot serve what the run asks of it."""


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


def cache_key(identity: dict, texts: list[str], max_length: int, kind: str = "logits") -> str:
    digest = hashlib.sha256(json.dumps([identity["id"], max_length, texts]).encode())
    return f"{CACHE_PREFIX[kind]}/{digest.hexdigest()[:24]}.npy"


def score_teacher(folder: Path, texts: list[str], max_length: int) -> np.ndarray:
    """The teacher's logits [n, 2] (class 0 real, 1 fake) on `texts`, in fp32 whatever the
    machine: the cache key names the teacher and the texts, not the device, so a cached answer
    must not depend on whether the machine that scored it had bf16."""
    if (folder / "manifest.json").is_file():
        return BundleScorer(folder).logits_and_ood(texts)[0]
    labels = json.loads((folder / "config.json").read_text()).get("id2label", {})
    if labels != {"0": "real", "1": "fake"}:
        raise TeacherError(f"{folder}: the teacher must be a real/fake classifier, has {labels}")
    tokenizer = load_tokenizer(folder, placeholders=False)  # as saved with the teacher
    model = load_classifier(folder, fresh_head=False)
    device = pick_device("auto")
    model.to(device)
    enc = encode(tokenizer, texts, np.zeros(len(texts)), max_length)
    with torch.inference_mode():
        return predict_logits(model, enc, tokenizer.pad_token_id or 0, device, precision="fp32")


def score_teacher_states(folder: Path, texts: list[str], max_length: int) -> np.ndarray:
    """The teacher's last-layer state of the first token [n, hidden] on `texts`."""
    tokenizer = load_tokenizer(folder, placeholders=False)
    model = load_classifier(folder, fresh_head=False)
    device = pick_device("auto")
    model.to(device).eval()
    enc = encode(tokenizer, texts, np.zeros(len(texts)), max_length)
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for idx in bucketed_batches(enc.lengths, 64, rng=None):
            batch = to_device(collate(enc, idx, tokenizer.pad_token_id or 0), device)
            states = model(**batch, output_hidden_states=True).hidden_states[-1][:, 0]
            out[idx] = states.float().cpu().numpy()
    return out


def teacher_logits(
    spec: str, texts: list[str], max_length: int, store: Store, work_dir: Path
) -> tuple[np.ndarray, dict]:
    """The teacher's logits on the training posts, from the store's cache when it has them."""
    folder = fetch_teacher(spec, work_dir)
    identity = teacher_identity(folder)
    key = cache_key(identity, texts, max_length)
    logits = _cached(store, key, identity, lambda: score_teacher(folder, texts, max_length))
    return logits, {"source": spec, **identity, "logits_cache": key}


def teacher_states(
    spec: str, texts: list[str], max_length: int, store: Store, work_dir: Path
) -> tuple[np.ndarray, str]:
    """The teacher's last-layer first-token states on the training posts, cached like its logits;
    returns them and their cache key."""
    folder = fetch_teacher(spec, work_dir)
    identity = teacher_identity(folder)
    if identity["kind"] == "bundle":
        raise TeacherError(
            f"{spec}: hidden-state transfer needs the teacher as a Hugging Face folder (a bundle "
            "keeps only its logits); pass the folder the teacher's run saved as model/"
        )
    key = cache_key(identity, texts, max_length, kind="states")
    states = _cached(store, key, identity, lambda: score_teacher_states(folder, texts, max_length))
    return states, key


def _cached(store: Store, key: str, identity: dict, score) -> np.ndarray:
    if store.exists(key):
        log.info("teacher %s: %s from the cache", identity["id"], key)
        return np.load(io.BytesIO(store.read_bytes(key)))
    log.info("teacher %s: scoring the training posts for %s", identity["id"], key)
    values = np.asarray(score(), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, values)
    store.write_bytes(key, buffer.getvalue())
    return values
