"""Which hidden layer's mean-pooled features make the best out-of-domain flag: for each layer of
a fine-tuned Hugging Face model (fp32, PyTorch), the unit-length Mahalanobis fit the job uses
(training texts plus unlabelled news), scored against the non-news reference.

    python -m experiments.ood_layers RUN_DIR/model [--sources data/sources.toml]

Samples: 300 training rows per source and 1,000 unlabelled news titles fitted on; 1,000
validation items for the threshold (export.ood.QUANTILE); 1,000 test items as in domain; the
whole non-news reference; 500 unseen news titles. The bundle exports the middle layer
(export.onnx_export), so a better layer would mean a new export, not a new fit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from export import ood
from train_job.config import resolve_config
from train_job.data import load_dataset
from train_job.trust_eval import read_news_for_ood_fit, read_non_news, read_unseen_news

ABC = Path("data/multisource/abc_headlines_unlabelled.csv.gz")
NON_NEWS = Path("data/non_news/non_news_reference.csv.gz")


def layer_features(model_dir: str, texts: list[str], max_length: int = 64) -> np.ndarray:
    """[texts, layers + 1, hidden]: the attention-masked mean of every hidden state."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[np.ndarray | None] = [None] * len(texts)
    for start in range(0, len(order), 64):
        idx = order[start : start + 64]
        batch = tokenizer(
            [texts[i] for i in idx],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            states = model(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = np.stack([((h * mask).sum(1) / mask.sum(1)).numpy() for h in states], 1)
        for j, i in enumerate(idx):
            out[i] = pooled[j]
    return np.stack(out)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.ood_layers")
    parser.add_argument("model_dir", help="a run's fine-tuned HF folder (local/runs/<id>/model)")
    parser.add_argument("--sources", default="data/sources.toml")
    args = parser.parse_args(argv)

    ds = load_dataset(resolve_config(["--sources", args.sources], env={}))
    train = pd.concat(
        g.sample(min(len(g), 300), random_state=0) for _, g in ds.splits["train"].groupby("source")
    )
    sets = {
        "train": train["text"].tolist(),
        "val": ds.splits["val"].sample(1000, random_state=0)["text"].tolist(),
        "test": ds.splits["test"].sample(1000, random_state=0)["text"].tolist(),
        "news_fit": read_news_for_ood_fit(ABC, 1000),
        "non_news": read_non_news(NON_NEWS)[0],
        "unseen": read_unseen_news(ABC)[:500],
    }
    feats = {name: layer_features(args.model_dir, texts) for name, texts in sets.items()}

    def report(name: str, pick) -> None:
        params = ood.fit(np.concatenate([pick(feats["train"]), pick(feats["news_fit"])]))
        dist = {k: ood.distance(pick(v), params) for k, v in feats.items()}
        threshold = ood.threshold(dist["val"])
        y = np.r_[np.zeros(len(dist["test"])), np.ones(len(dist["non_news"]))]
        auc = roc_auc_score(y, np.r_[dist["test"], dist["non_news"]])
        print(
            f"{name:10s} in-domain test flagged {np.mean(dist['test'] >= threshold):.3f}  "
            f"non-news ROC-AUC {auc:.3f} flagged {np.mean(dist['non_news'] >= threshold):.3f}  "
            f"unseen news flagged {np.mean(dist['unseen'] >= threshold):.3f}",
            flush=True,
        )

    for layer in range(feats["train"].shape[1]):
        report(f"layer{layer}", lambda x, layer=layer: x[:, layer])
    report("mean1-6", lambda x: x[:, 1:].mean(1))
    middle, last = feats["train"].shape[1] // 2, feats["train"].shape[1] - 1
    report("concat", lambda x: np.concatenate([x[:, middle], x[:, last]], 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
