"""How well the out-of-domain flag of one bundle separates in-domain text from the non-news
reference, and how many unseen news headlines it flags, for ways of fitting the flag.

    python -m experiments.ood_reference BUNDLE [--sources data/sources.toml] [--out FILE]

Fits compared, each a Mahalanobis distance on the bundle's pooled features with the threshold
at the job's quantile of the validation distances (export.ood.QUANTILE), on raw features and on
features scaled to unit length (export.ood, what the job fits now):
- ``train``: the training texts (a stratified sample per source);
- ``train+unlabelled_news``: the same plus unlabelled ABC headlines (rows disjoint from the
  unseen-news sample the report scores), so that news in general is in domain.

The non-news reference is never fitted on; it is only scored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from export import ood
from export.onnx_logits import logits_and_pooled
from train_job.config import resolve_config
from train_job.data import load_dataset
from train_job.trust_eval import read_liar, read_news_for_ood_fit, read_non_news, read_unseen_news

ABC = Path("data/multisource/abc_headlines_unlabelled.csv.gz")


def raw_fit(pooled: np.ndarray):
    """The flag as it was first fitted: unscaled features."""
    estimator = LedoitWolf().fit(pooled.astype(np.float64))
    mean, precision = estimator.location_, estimator.precision_
    return lambda x: np.einsum("ij,jk,ik->i", x - mean, precision, x - mean)


def unit_length_fit(pooled: np.ndarray):
    params = ood.fit(pooled)
    return lambda x: ood.distance(x, params)


def pooled(bundle: Path, texts: list[str]) -> np.ndarray:
    from tokenizers import Tokenizer

    manifest = json.loads((bundle / "manifest.json").read_text())
    tokenizer = Tokenizer.from_file(str(bundle / manifest["tokenizer_file"]))
    tokenizer.no_padding()
    encodings = tokenizer.encode_batch(texts)
    features = {
        "input_ids": [e.ids for e in encodings],
        "attention_mask": [e.attention_mask for e in encodings],
        "token_type_ids": [e.type_ids for e in encodings],
    }
    _, out = logits_and_pooled(bundle / manifest["model_file"], features)
    assert out is not None, "the bundle's graph has no pooled output"
    return out


def per_source_sample(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    return pd.concat(
        g.sample(min(len(g), n), random_state=seed) for _, g in frame.groupby("source")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.ood_reference")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--sources", default="data/sources.toml")
    parser.add_argument("--per-source", type=int, default=1000, help="train rows per source")
    parser.add_argument("--news-fit", type=int, default=3000, help="ABC headlines fitted on")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--features", type=Path, default=None, help="also save them here (npz)")
    args = parser.parse_args(argv)

    ds = load_dataset(resolve_config(["--sources", args.sources], env={}))
    train = per_source_sample(ds.splits["train"], args.per_source)
    sets = {
        "train": train["text"].tolist(),
        "val": ds.splits["val"]["text"].tolist(),
        "test": ds.splits["test"]["text"].tolist(),
        "news_fit": read_news_for_ood_fit(ABC, args.news_fit),
        "unseen_news": read_unseen_news(ABC),
        "non_news": read_non_news(Path("data/non_news/non_news_reference.csv.gz"))[0],
        "liar": read_liar(Path("data/liar/test.tsv")),
    }
    feats = {name: pooled(args.bundle, texts) for name, texts in sets.items()}
    if args.features:
        np.savez(args.features, train_source=train["source"].to_numpy(), **feats)

    fitted_on = {
        "train": feats["train"],
        "train+unlabelled_news": np.concatenate([feats["train"], feats["news_fit"]]),
    }
    rows = []
    for features, fit in (("raw", raw_fit), ("unit_length", unit_length_fit)):
        for name, pooled_rows in fitted_on.items():
            score = fit(pooled_rows)
            dist = {k: score(v) for k, v in feats.items()}
            threshold = ood.threshold(dist["val"])

            def auc(out: np.ndarray, dist=dist) -> float:
                y = np.r_[np.zeros(len(dist["test"])), np.ones(len(out))]
                return float(roc_auc_score(y, np.r_[dist["test"], out]))

            rows.append(
                {
                    "features": features,
                    "fit": name,
                    "in_domain_test_flagged": float((dist["test"] >= threshold).mean()),
                    "non_news_auc": auc(dist["non_news"]),
                    "non_news_flagged": float((dist["non_news"] >= threshold).mean()),
                    "unseen_news_auc": auc(dist["unseen_news"]),
                    "unseen_news_flagged": float((dist["unseen_news"] >= threshold).mean()),
                    "liar_flagged": float((dist["liar"] >= threshold).mean()),
                }
            )
    for row in rows:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    if args.out:
        record = {"bundle": str(args.bundle), "quantile": ood.QUANTILE, "rows": rows}
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
