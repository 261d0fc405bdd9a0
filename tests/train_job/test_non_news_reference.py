"""The non-news reference for the out-of-domain flag: the committed file is what its README says
and what its builder makes, no text of it is in the training data, and the trust report scores
it (and unseen real news headlines) apart from the LIAR + probes figure."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from train_job.sources import read_mix
from train_job.trust_eval import (
    BundleScorer,
    ood_report,
    read_news_for_ood_fit,
    read_non_news,
    read_unseen_news,
)

NON_NEWS = ROOT / "data/non_news/non_news_reference.csv.gz"
UNSEEN_NEWS = ROOT / "data/multisource/abc_headlines_unlabelled.csv.gz"
GENRES = {"fortune_cookie", "programmer_joke", "technical_prose"}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_csv(NON_NEWS, dtype=str, keep_default_na=False)


def test_committed_file_has_three_genres_of_distinct_non_empty_texts(
    reference: pd.DataFrame,
) -> None:
    assert list(reference.columns) == ["text", "genre", "origin"]
    assert set(reference["genre"]) == GENRES
    assert (reference["text"].str.strip() != "").all()
    assert (reference["origin"] != "").all()
    assert not reference["text"].str.lower().duplicated().any()
    texts, genres = read_non_news(NON_NEWS)
    assert (len(texts), len(genres)) == (len(reference), len(reference))


def test_no_text_is_in_the_training_data(reference: pd.DataFrame) -> None:
    seen: set[str] = set()
    files = [*(ROOT / "data/multisource").glob("*.csv.gz")]
    files += [*(ROOT / "data/constraint-covid19-fakenews").glob("*.csv")]
    for path in files:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for column in {"title", "body", "tweet", "text"} & set(frame.columns):
            seen |= set(frame[column].str.lower())
    assert len(files) >= 8 and len(seen) > 100_000
    assert not set(reference["text"].str.lower()) & seen


def test_no_mix_trains_on_the_reference_or_the_unseen_headlines() -> None:
    mix = read_mix(str(ROOT / "data/sources.toml"))
    every_file = [f for s in mix.sources for f in s.files.values()]
    assert not [f for f in every_file if "non_news" in f or "abc_headlines" in f]


def test_readme_states_the_sha256_of_the_uncompressed_csv() -> None:
    readme = (ROOT / "data/non_news/README.md").read_text()
    digest = hashlib.sha256(gzip.decompress(NON_NEWS.read_bytes())).hexdigest()
    assert re.findall(r"`([0-9a-f]{64})`", readme)[0] == digest


def test_builder_reproduces_the_committed_file_byte_for_byte(tmp_path: Path) -> None:
    wheels = os.environ.get("FND_NON_NEWS_WHEELS")
    if not wheels or not Path(wheels).is_dir():
        pytest.skip("set FND_NON_NEWS_WHEELS to the folder of the two wheels (see the README)")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the technical prose is Python 3.11's docstrings")
    from tools.build_non_news_reference import main

    assert main(["--wheels", wheels, "--out", str(tmp_path / "rebuilt.csv.gz")]) == 0
    assert (tmp_path / "rebuilt.csv.gz").read_bytes() == NON_NEWS.read_bytes()


def test_unseen_headlines_are_a_fixed_sample() -> None:
    titles = read_unseen_news(UNSEEN_NEWS)
    assert len(titles) == len(set(titles)) == 1000
    assert titles == read_unseen_news(UNSEEN_NEWS)


def test_the_flag_is_never_fitted_on_the_headlines_it_is_checked_on() -> None:
    checked = read_unseen_news(UNSEEN_NEWS)
    fitted = read_news_for_ood_fit(UNSEEN_NEWS, 3000)
    assert len(fitted) == len(set(fitted)) == 3000
    assert not set(checked) & set(fitted)


def test_a_news_file_without_a_title_column_is_bad_data(tmp_path: Path) -> None:
    from train_job.tables import DataError

    (tmp_path / "news.csv").write_text("headline\nsomething happened\n")
    with pytest.raises(DataError, match="expected a title column"):
        read_news_for_ood_fit(tmp_path / "news.csv", 1)


WORDS = [a + b + c for a in "abcd" for b in "efgh" for c in "ijkl"]  # enough for the probes


class _Scorer(SimpleNamespace):
    """OOD score = text length: long texts are out of domain (threshold 50)."""

    def logits_and_ood(self, texts: list[str]):
        return np.zeros((len(texts), 2)), np.array([float(len(t)) for t in texts])


def test_report_puts_non_news_and_unseen_news_beside_liar_and_probes(tmp_path: Path) -> None:
    scorer = _Scorer(
        manifest={"ood": {"threshold": 50.0, "method": "length"}},
        tokenizer=SimpleNamespace(get_vocab=lambda: dict.fromkeys(WORDS, 0)),
    )
    in_scores = np.array([10.0, 20.0, 30.0, 60.0])
    before = ood_report(scorer, in_scores, None)
    non_news = tmp_path / "non_news.csv"
    pd.DataFrame(
        {
            "text": ["x" * 80, "y" * 90, "z" * 40, "w" * 70],
            "genre": ["joke", "joke", "prose", "prose"],
            "origin": ["a", "b", "c", "d"],
        }
    ).to_csv(non_news, index=False)
    unseen = tmp_path / "titles.csv"
    pd.DataFrame({"title": ["short title", "a" * 55, "another short one"]}).to_csv(
        unseen, index=False
    )
    report = ood_report(scorer, in_scores, tmp_path / "no_liar.tsv", non_news, unseen)

    assert report["roc_auc_all"] == before["roc_auc_all"]  # LIAR + probes only, as before
    assert set(before["by_set"]) < set(report["by_set"])
    assert report["by_set"]["non_news_reference"]["n"] == 4
    assert report["non_news_flagged_share"] == pytest.approx(3 / 4)
    assert report["non_news_roc_auc"] == pytest.approx(15 / 16)  # 40 is below the in-domain 60
    assert report["non_news_by_genre"]["joke"]["flagged_share"] == 1.0
    assert report["non_news_by_genre"]["prose"]["n"] == 2
    assert report["by_set"]["unseen_news_headlines"]["n"] == 3
    assert report["unseen_news_flagged_share"] == pytest.approx(1 / 3)
    skipped = ood_report(scorer, in_scores, None, tmp_path / "none.csv", tmp_path / "none.csv")
    assert "non_news_roc_auc" not in skipped and "unseen_news_flagged_share" not in skipped


def test_the_served_bundle_reports_the_non_news_reference(
    tiny_run: dict, tiny_bundle: Path
) -> None:
    from train_job.run_record import run_summary

    closing = run_summary(tiny_run)
    assert "non-news reference: ROC-AUC" in closing and "unseen news headlines:" in closing
    ood = json.loads((tiny_bundle / "manifest.json").read_text())["trust"]["ood"]
    assert ood["by_set"]["non_news_reference"]["n"] == len(read_non_news(NON_NEWS)[0])
    assert set(ood["non_news_by_genre"]) == GENRES
    assert ood["by_set"]["unseen_news_headlines"]["n"] == 1000
    assert 0 <= ood["non_news_flagged_share"] <= 1 and 0 <= ood["unseen_news_flagged_share"] <= 1
    assert "liar_statements" in ood["by_set"] and "code" in ood["by_set"]
    fitted = json.loads((tiny_bundle / "manifest.json").read_text())["ood"]
    assert fitted["method"] == "mahalanobis_l2"
    assert fitted["fitted_on"]["unlabelled_news"] == 3000
    scorer = BundleScorer(tiny_bundle)
    texts = read_non_news(NON_NEWS)[0][:3]
    assert np.isfinite(scorer.logits_and_ood(texts)[1]).all()
