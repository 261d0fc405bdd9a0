"""Evaluate a published bundle the way it is served: int8 ONNX + tokenizer.json + manifest.

- Out-of-domain flag: ROC-AUC of the bundle's OOD score separating in-domain posts (the CONSTRAINT
  test split) from out-of-domain text (LIAR political statements, evaluation use only, plus
  generated probes: other languages, code, word salad, very long documents), and the share of
  in-domain posts flagged. Apart from that figure: the same for a named set of real text that is
  not news (data/non_news: fortune cookies, programmer jokes, standard-library docstrings), and the
  share of unseen real news headlines flagged (the flag is for non-news, not for every headline).
- Robustness: accuracy on the test split under typos, truncation and case changes.
- Calibration: ECE before and after the bundle's calibration (temperature or map).
- Cross-source: COVID-19 headlines from other sources (CoAID, evaluation use only): ROC-AUC, the
  share of real titles called fake, the share flagged out of domain, and the share of real titles
  called fake while in domain (a confident wrong answer; flagging a title is an honest one).

    python -m train_job.trust_eval BUNDLE_DIR [--cross-source FILE.csv] [--non-news FILE.csv.gz]
        [--unseen-news FILE.csv.gz] [--out report.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from serving_core.calibration import positive_probability
from train_job.evaluate import expected_calibration_error, softmax
from train_job.tables import DataError


class BundleScorer:
    """The served model, read from the bundle alone (no torch, no training code)."""

    def __init__(self, bundle: Path, manifest: dict | None = None) -> None:
        """manifest: the bundle's manifest when it is not written yet (the job scores a bundle
        before its manifest carries the trust report)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.manifest = manifest or json.loads((bundle / "manifest.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(bundle / self.manifest["tokenizer_file"]))
        self.tokenizer.no_padding()  # batches are padded below, to their own longest
        self.session = ort.InferenceSession(str(bundle / self.manifest["model_file"]))
        self.inputs = [i.name for i in self.session.get_inputs()]
        ood = self.manifest.get("ood")
        self.ood = dict(np.load(bundle / ood["params_file"])) if ood else None
        self._scored: dict[tuple[int, ...], tuple[np.ndarray, float]] = {}  # ids -> logits, OOD

    def logits_and_ood(self, texts: list[str], batch_size: int = 64):
        """Logits [n, 2] and OOD scores [n] (NaN without a detector). A token sequence this
        scorer has already run is not run again: an uncased tokenizer's case-changed test split,
        a title repeated across sets. The ids are the model's whole input (one sequence each, no
        padding: its mask and type ids follow from them)."""
        encodings = self.tokenizer.encode_batch(texts)
        keys = [tuple(encoding.ids) for encoding in encodings]
        first_of_new: dict[tuple[int, ...], int] = {}
        for i, key in enumerate(keys):
            if key not in self._scored:
                first_of_new.setdefault(key, i)
        order = sorted(first_of_new.values(), key=lambda i: len(keys[i]))
        fields = {
            "input_ids": "ids",
            "attention_mask": "attention_mask",
            "token_type_ids": "type_ids",
        }
        output_names = [o.name for o in self.session.get_outputs()]
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(keys[i]) for i in idx)
            feed = {}
            for name in self.inputs:
                rows = [getattr(encodings[i], fields[name]) for i in idx]
                feed[name] = np.array([r + [0] * (width - len(r)) for r in rows], dtype=np.int64)
            outputs = dict(zip(output_names, self.session.run(None, feed), strict=True))
            ood = (
                self._ood_scores(outputs["pooled"]) if self.ood is not None else [np.nan] * len(idx)
            )
            for row, i in enumerate(idx):
                self._scored[keys[i]] = (outputs["logits"][row], float(ood[row]))
        logits = np.zeros((len(texts), 2), dtype=np.float32)
        ood_scores = np.full(len(texts), np.nan)
        for i, key in enumerate(keys):
            logits[i], ood_scores[i] = self._scored[key]
        return logits, ood_scores

    def _ood_scores(self, pooled: np.ndarray) -> np.ndarray:
        assert self.ood is not None
        if self.manifest["ood"]["method"] == "mahalanobis_l2":
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        centred = pooled - self.ood["mean"]
        return np.einsum("ij,jk,ik->i", centred, self.ood["precision"], centred)

    def predict(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(calibrated P(fake), predicted label 0/1, ood score)."""
        logits, ood = self.logits_and_ood(texts)
        p_fake = positive_probability(logits[:, 1] - logits[:, 0], self.manifest["calibration"])
        return p_fake, (p_fake >= self.manifest["decision"]["threshold"]).astype(int), ood


# --- generated out-of-domain probes -----------------------------------------------------------

_FOREIGN = [
    "Der Bundestag hat heute über den Haushalt für das kommende Jahr abgestimmt.",
    "Le gouvernement a annoncé une réforme des retraites pour le mois prochain.",
    "El equipo ganó el campeonato después de un partido muy reñido en Madrid.",
    "Il prezzo della benzina è aumentato di nuovo questa settimana in tutta Italia.",
    "Het kabinet presenteert morgen de plannen voor de nieuwe woningbouw.",
    "Prefeitura anuncia obras de pavimentação em três bairros da zona norte.",
    "Правительство утвердило новый бюджет на следующий год.",
    "東京で新しい美術館が来月オープンする予定です。",
    "北京今天天气晴朗，气温将达到二十五度。",
    "सरकार ने किसानों के लिए नई योजना की घोषणा की है।",
]
_CODE = [
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "for (int i = 0; i < n; i++) { sum += values[i]; }",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 10;",
    "const server = http.createServer((req, res) => { res.end('ok'); });",
    "import numpy as np\nx = np.linspace(0, 1, 100)\ny = np.sin(x)",
    '#include <stdio.h>\nint main(void) { printf("hello\\n"); return 0; }',
    "git commit -m 'fix flaky test' && git push origin main",
    '<div class="row"><span id="total">{{ total }}</span></div>',
]


def generated_probes(
    vocab: list[str], long_source: list[str], seed: int = 0
) -> dict[str, list[str]]:
    rng = random.Random(seed)
    words = [w for w in vocab if w.isalpha() and len(w) > 2]
    salad = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) for _ in range(100)]
    long_docs = [" ".join(rng.sample(long_source, 40)) for _ in range(50)]  # off-topic and long
    return {
        "other_languages": _FOREIGN,
        "code": _CODE,
        "word_salad": salad,
        "long_documents": long_docs,
    }


def read_labelled_titles(path: Path) -> tuple[list[str], np.ndarray]:
    """A CSV with a `title` (or `text`) column and a `label` column of fake/real; 1 = fake."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    column = "title" if "title" in frame.columns else "text"
    if column not in frame.columns or "label" not in frame.columns:
        raise ValueError(f"{path}: needs a title (or text) column and a label column")
    frame = frame[frame[column].str.strip() != ""]
    labels = frame["label"].str.strip().str.lower()
    unknown = sorted(set(labels) - {"fake", "real"})
    if unknown:
        raise ValueError(f"{path}: unknown label value(s) {unknown}; expected fake or real")
    return frame[column].tolist(), (labels == "fake").to_numpy().astype(int)


def cross_source_report(scorer: BundleScorer, texts: list[str], labels: np.ndarray) -> dict:
    p_fake, pred, ood_scores = scorer.predict(texts)
    real = labels == 0
    in_domain = (
        ood_scores < scorer.manifest["ood"]["threshold"]
        if scorer.ood is not None
        else np.ones(len(texts), dtype=bool)
    )
    return {
        "n": len(texts),
        "fake": int(labels.sum()),
        "real": int(real.sum()),
        "roc_auc": float(roc_auc_score(labels, p_fake)),
        "ece": expected_calibration_error(p_fake, labels),
        "accuracy": float((pred == labels).mean()),
        "real_called_fake_share": float(pred[real].mean()),
        "fake_called_real_share": float(1 - pred[~real].mean()),
        "flagged_out_of_domain_share": float((~in_domain).mean()),
        "real_called_fake_in_domain_share": float((pred[real] & in_domain[real]).mean()),
    }


def read_liar(path: Path) -> list[str]:
    frame = pd.read_csv(path, sep="\t", header=None, quoting=csv.QUOTE_NONE, dtype=str)
    return frame[2].dropna().tolist()


def read_non_news(path: Path) -> tuple[list[str], list[str]]:
    """The non-news reference (text,genre,origin CSV, gzip or not): (texts, genres)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame[frame["text"].str.strip() != ""]
    return frame["text"].tolist(), frame["genre"].tolist()


def _shuffled_titles(path: Path, seed: int = 0) -> list[str]:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "title" not in table.columns:
        raise DataError(f"{path}: expected a title column, found {list(table.columns)}")
    titles = table["title"]
    titles = titles[titles.str.strip() != ""].tolist()
    return random.Random(seed).sample(titles, len(titles))


def read_unseen_news(path: Path, n: int = 1000) -> list[str]:
    """A fixed, seeded sample of `n` titles (column `title`) of real news never trained on, and
    never among the titles the out-of-domain flag is fitted on (read_news_for_ood_fit)."""
    return _shuffled_titles(path)[:n]


def read_news_for_ood_fit(path: Path, n: int, checked: int = 1000) -> list[str]:
    """`n` titles of the same file for the out-of-domain flag's fit, after the `checked` ones
    read_unseen_news scores."""
    return _shuffled_titles(path)[checked : checked + n]


# --- perturbations for robustness -------------------------------------------------------------


def typos(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Swap two neighbouring letters in about `rate` of the words."""
    out = []
    for word in text.split(" "):
        if len(word) > 3 and word.isalpha() and rng.random() < rate:
            i = rng.randrange(len(word) - 1)
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        out.append(word)
    return " ".join(out)


def first_half(text: str) -> str:
    words = text.split()
    return " ".join(words[: max(len(words) // 2, 3)])


def evaluate_bundle(
    bundle: Path,
    texts: list[str],
    labels: np.ndarray,
    liar: Path | None,
    cross_source: Path | None = None,
    manifest: dict | None = None,
    non_news: Path | None = None,
    unseen_news: Path | None = None,
) -> dict:
    """texts/labels: the in-domain test split; liar: LIAR TSV for out-of-domain text (optional);
    cross_source: labelled titles from other sources (optional); manifest: see BundleScorer;
    non_news, unseen_news: see ood_report (optional)."""
    scorer = BundleScorer(bundle, manifest)
    logits, in_scores = scorer.logits_and_ood(texts)
    calibration = scorer.manifest["calibration"]
    p_fake = positive_probability(logits[:, 1] - logits[:, 0], calibration)
    pred = (p_fake >= scorer.manifest["decision"]["threshold"]).astype(int)
    report: dict = {
        "bundle_version": scorer.manifest["version"],
        "test_posts": len(texts),
        "accuracy": float((pred == labels).mean()),
        "calibration": {
            "method": "isotonic" if "map" in calibration else "temperature",
            "temperature": calibration["temperature"],
            "ece_before": expected_calibration_error(softmax(logits)[:, 1], labels),
            "ece_after": expected_calibration_error(p_fake, labels),
        },
    }

    rng = random.Random(0)
    variants = {
        "typos_10pct_words": [typos(t, rng) for t in texts],
        "first_half_of_words": [first_half(t) for t in texts],
        "lower_case": [t.lower() for t in texts],
        "upper_case": [t.upper() for t in texts],
    }
    report["robustness"] = {"clean": report["accuracy"]}
    for name, variant in variants.items():
        _, variant_pred, _ = scorer.predict(variant)
        report["robustness"][name] = float((variant_pred == labels).mean())

    if cross_source is not None:
        report["cross_source"] = {
            "file": cross_source.name,
            **cross_source_report(scorer, *read_labelled_titles(cross_source)),
        }
    if scorer.ood is not None:
        report["ood"] = ood_report(scorer, in_scores, liar, non_news, unseen_news)
    return report


def ood_report(
    scorer: BundleScorer,
    in_scores: np.ndarray,
    liar: Path | None,
    non_news: Path | None = None,
    unseen_news: Path | None = None,
) -> dict:
    """How well the OOD score separates the in-domain test posts from off-topic text: LIAR
    statements and generated probes (code, foreign languages, long documents), which make
    `roc_auc_all`; apart from it, the non-news reference (non_news: its CSV; by genre too) and
    unseen real news headlines (unseen_news: a title CSV, sampled), which should mostly pass.
    A file that is not there is skipped."""
    threshold = scorer.manifest["ood"]["threshold"]
    vocab = list(scorer.tokenizer.get_vocab())
    liar_texts = read_liar(liar) if liar is not None and liar.exists() else []
    # Long documents are made of LIAR statements (off-topic), or of words when LIAR is absent.
    sets = generated_probes(vocab, liar_texts or vocab)
    if liar_texts:
        sets = {"liar_statements": liar_texts, **sets}
    out_scores = {name: scorer.logits_and_ood(t)[1] for name, t in sets.items()}
    all_out = np.concatenate(list(out_scores.values()))
    genres: list[str] = []
    if non_news is not None and non_news.exists():
        non_news_texts, genres = read_non_news(non_news)
        out_scores["non_news_reference"] = scorer.logits_and_ood(non_news_texts)[1]
    if unseen_news is not None and unseen_news.exists():
        out_scores["unseen_news_headlines"] = scorer.logits_and_ood(read_unseen_news(unseen_news))[
            1
        ]

    def auc_against_in_domain(scores: np.ndarray) -> float:
        y = np.r_[np.zeros(len(in_scores)), np.ones(len(scores))]
        return float(roc_auc_score(y, np.r_[in_scores, scores]))

    def summary(scores: np.ndarray) -> dict:
        return {
            "n": len(scores),
            "roc_auc_vs_in_domain": auc_against_in_domain(scores),
            "flagged_share": float((scores >= threshold).mean()),
        }

    report = {
        "method": scorer.manifest["ood"]["method"],
        "threshold": threshold,
        "in_domain_flagged_share": float((in_scores >= threshold).mean()),
        "roc_auc_all": auc_against_in_domain(all_out),
        "by_set": {name: summary(scores) for name, scores in out_scores.items()},
    }
    if "non_news_reference" in out_scores:
        non_news_set = report["by_set"]["non_news_reference"]
        report["non_news_roc_auc"] = non_news_set["roc_auc_vs_in_domain"]
        report["non_news_flagged_share"] = non_news_set["flagged_share"]
        by_genre = np.array(genres)
        report["non_news_by_genre"] = {
            genre: summary(out_scores["non_news_reference"][by_genre == genre])
            for genre in sorted(set(genres))
        }
    if "unseen_news_headlines" in out_scores:
        report["unseen_news_flagged_share"] = report["by_set"]["unseen_news_headlines"][
            "flagged_share"
        ]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train_job.trust_eval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("bundle", type=Path, help="bundle folder (models/<version>/)")
    parser.add_argument("--data", type=Path, default=Path("data/constraint-covid19-fakenews"))
    parser.add_argument("--liar", type=Path, default=Path("data/liar/test.tsv"))
    parser.add_argument(
        "--non-news",
        type=Path,
        default=Path("data/non_news/non_news_reference.csv.gz"),
        help="real text that is not news, for the OOD flag (text,genre,origin CSV)",
    )
    parser.add_argument(
        "--unseen-news",
        type=Path,
        default=Path("data/multisource/abc_headlines_unlabelled.csv.gz"),
        help="real news titles never trained on (title CSV; 1,000 are sampled)",
    )
    parser.add_argument(
        "--cross-source",
        type=Path,
        default=Path("data/coaid-2020-05/coaid_2020-05_titles.csv"),
        help="labelled titles from other sources (title,label CSV)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the report (JSON) here")
    args = parser.parse_args(argv)
    if not (args.bundle / "manifest.json").is_file():
        print(f"error: {args.bundle} is not a bundle (no manifest.json)", file=sys.stderr)
        return 2
    from train_job.config import TrainConfig
    from train_job.data import load_dataset

    test = load_dataset(TrainConfig(data=str(args.data))).splits["test"]
    report = evaluate_bundle(
        args.bundle,
        test["text"].tolist(),
        test["label"].to_numpy(),
        args.liar,
        args.cross_source,
        non_news=args.non_news,
        unseen_news=args.unseen_news,
    )
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
