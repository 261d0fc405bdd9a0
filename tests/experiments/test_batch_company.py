"""experiments/batch_company.py: a title scored alone and in company, through the function's
model code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.batch_company import markdown, measure

TITLES = [
    "Garlic water cures the virus in one night, nurses say",
    "Officials report 312 new cases and two deaths in the county",
    "5G towers spread the coronavirus, engineer reveals",
    "Health ministry extends the school closures by two weeks",
    "Drinking bleach protects against infection, post claims",
    "Hospitals in the region add 400 intensive care beds",
    "Vaccine trial volunteers turned into zombies, report says",
    "New testing centre opens at the city stadium on Monday",
]


def test_one_text_per_call_answers_as_alone_and_the_report_names_each_figure(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    labels = np.array([1, 0] * 4)
    result = measure(str(tiny_bundle), TITLES, labels, 3, 32, tmp_path / "cache")
    assert result["titles"] == len(TITLES) and result["request_size"] == 3
    assert result["one_per_call_equals_alone"] is True
    assert 0.0 <= result["labels_changed_share"] <= 1.0
    assert result["p_fake_moved_mean"] <= result["p_fake_moved_p99"] <= result["p_fake_moved_max"]
    assert 0.0 <= result["roc_auc_alone"] <= 1.0 and 0.0 <= result["roc_auc_in_company"] <= 1.0
    runs = result["seconds_each_run"]
    assert [len(runs["batched"]), len(runs["one_per_call"])] == [2, 2]
    assert result["seconds_batched"] == min(runs["batched"])
    report = markdown(result)
    assert result["bundle_version"] in report and "labels changed by company" in report
