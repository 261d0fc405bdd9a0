"""A tiny, randomly initialised BERT with the packaged MiniLM's tokenizer: the whole pipeline
(train, export, quantize, gate, publish, serve) runs on it in seconds."""

from __future__ import annotations

from pathlib import Path


def make_tiny_bert(out_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from train_job.model import packaged_minilm

    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm())
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=2,
    )
    BertForSequenceClassification(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def clone_bundle(bundle: Path, out_dir: Path, version: str) -> Path:
    """A copy of a bundle under another version id (same files), e.g. to test promotion."""
    import json
    import shutil

    shutil.copytree(bundle, out_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    manifest["version"] = version
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out_dir
