"""Cross-source section of the trust report: COVID-19 titles from other sources (CoAID)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from train_job.trust_eval import cross_source_report, read_labelled_titles


class _Scorer(SimpleNamespace):
    def predict(self, texts):
        return self.p_fake, (self.p_fake >= 0.5).astype(int), self.ood_scores


def test_shares_count_confident_wrong_answers_apart_from_flagged_ones() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1])
    scorer = _Scorer(
        p_fake=np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3]),
        ood_scores=np.array([1.0, 9.0, 1.0, 9.0, 1.0, 1.0]),  # threshold 5: posts 1 and 3 flagged
        ood={"mean": 0},
        manifest={"ood": {"threshold": 5.0}},
    )
    report = cross_source_report(scorer, ["t"] * 6, labels)
    assert report["real_called_fake_share"] == pytest.approx(2 / 4)
    # Of the two real titles called fake, one was flagged out of domain: an honest answer.
    assert report["real_called_fake_in_domain_share"] == pytest.approx(1 / 4)
    assert report["flagged_out_of_domain_share"] == pytest.approx(2 / 6)
    assert report["fake_called_real_share"] == pytest.approx(1 / 2)
    assert report["roc_auc"] == pytest.approx(4 / 8)  # each fake above 2 of the 4 reals
    assert (report["n"], report["fake"], report["real"]) == (6, 2, 4)


def test_titles_file_needs_known_labels(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text('title,label\n"A claim",fake\n"",real\n"A report",Real\n')
    texts, labels = read_labelled_titles(good)
    assert texts == ["A claim", "A report"] and labels.tolist() == [1, 0]
    bad = tmp_path / "bad.csv"
    bad.write_text("title,label\nx,true\n")
    with pytest.raises(ValueError, match="unknown label"):
        read_labelled_titles(bad)
    (tmp_path / "none.csv").write_text("headline,label\nx,fake\n")
    with pytest.raises(ValueError, match="title"):
        read_labelled_titles(tmp_path / "none.csv")


def test_every_bundle_reports_the_coaid_titles(tiny_bundle: Path) -> None:
    trust = json.loads((tiny_bundle / "manifest.json").read_text())["trust"]
    cross = trust["cross_source"]
    assert (cross["file"], cross["n"], cross["fake"], cross["real"]) == (
        "coaid_2020-05_titles.csv",
        2355,
        599,
        1756,
    )
    assert 0 <= cross["real_called_fake_in_domain_share"] <= cross["real_called_fake_share"] <= 1
