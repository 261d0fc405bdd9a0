"""The promotion gate's F1 measured again on a labelled file, instead of read from the manifests.

Each manifest reports its own bundle's numbers, and a manifest is only as trustworthy as whoever
wrote it. With `--rescore FILE` the gate scores both bundles, as served (serving_core, int8 ONNX,
calibration and threshold from each manifest), on the same posts and compares those weighted F1
values in place of `metrics.int8.test_official.weighted_f1`: the same set for both by
construction. The cross-source ROC-AUC is still read from the manifests.

About 10 s per MiniLM-L6 int8 bundle for the 2,140 official test posts on 2 CPUs.
"""

from __future__ import annotations

import copy
import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from artifact_store import Store

F1_PATH = ("metrics", "int8", "test_official")


@dataclass(frozen=True)
class LabelledPosts:
    source: str
    texts: list[str]
    labels: list[str]


def read_labelled_posts(
    path: Path, text_column: str = "tweet", label_column: str = "label"
) -> LabelledPosts:
    """Posts and their labels from a CSV (the CONSTRAINT test split's columns by default)."""
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text, label = (row.get(text_column) or "").strip(), (row.get(label_column) or "")
            if text and label.strip():
                texts.append(text)
                labels.append(label.strip().lower())
    if not texts:
        raise LookupError(f"{path} has no rows with {text_column!r} and {label_column!r}")
    return LabelledPosts(str(path), texts, labels)


def weighted_f1(labels: list[str], predicted: list[str]) -> float:
    """F1 per class, weighted by the class's share of `labels` (sklearn's average="weighted")."""
    total, score = len(labels), 0.0
    for cls in sorted(set(labels)):
        tp = sum(1 for y, p in zip(labels, predicted, strict=True) if y == cls and p == cls)
        predicted_cls = sum(1 for p in predicted if p == cls)
        support = sum(1 for y in labels if y == cls)
        f1 = 2 * tp / (predicted_cls + support) if predicted_cls + support else 0.0
        score += f1 * support / total
    return score


def bundle_f1(store: Store, version: str, posts: LabelledPosts) -> float:
    """Weighted F1 of the stored bundle `version`, downloaded, verified and scored as served."""
    from serving_core.bundle import fetch_bundle
    from serving_core.model import Model

    with tempfile.TemporaryDirectory(prefix=f"rescore-{version}-") as tmp:
        folder = Path(tmp) / version
        for key in store.list(f"models/{version}/"):
            store.download_file(key, folder / key.removeprefix(f"models/{version}/"))
        bundle = fetch_bundle(str(folder), Path(tmp) / "cache")  # every file against its sha256
        model = Model.load(bundle, intra_op_threads=0, max_batch_size=32, max_batch_tokens=4096)
        predicted = [p.label for p in model.predict(posts.texts)]
    return weighted_f1(posts.labels, predicted)


def rescored(manifest: dict[str, Any], f1: float, posts: LabelledPosts) -> dict[str, Any]:
    """A copy of `manifest` whose official-test F1 is the one measured here, on `posts`."""
    out = copy.deepcopy(manifest)
    section: dict[str, Any] = out
    for key in F1_PATH:
        section = section.setdefault(key, {})
    section.update(weighted_f1=f1, n=len(posts.texts), rescored_on=posts.source)
    return out
