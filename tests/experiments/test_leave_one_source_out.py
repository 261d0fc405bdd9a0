"""experiments/cross_source.py: each source left out in turn; the model's and the baseline's
numbers on it, and a model column that was not run says so instead of holding a number."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from experiments import cross_source


def _metrics(**values) -> dict:
    base = {"n": 10, "fake": 4, "real": 6, "weighted_f1": 0.5, "roc_auc": 0.6}
    return base | {"real_called_fake_share": 0.25} | values


def test_model_row_reads_the_left_out_source_and_coaid_from_the_jobs_results() -> None:
    results = {
        "version": "v1",
        "seconds": 100.0,
        "train": {"history": [{"epoch": 1}], "examples_per_second": 20.0},
        "rows_by_source": {"a": {"train": 300, "test": 10}, "b": {"train": 100, "test": 5}},
        "by_source": {"model": {"a": _metrics(), "b": _metrics(weighted_f1=0.9)}},
        "trust": {"cross_source": {"n": 2355, "roc_auc": 0.8, "real_called_fake_share": 0.4}},
    }
    row = cross_source.model_row(results, "b")
    assert row["left_out"]["weighted_f1"] == 0.9
    assert row["coaid"] == {"n": 2355, "roc_auc": 0.8, "real_called_fake_share": 0.4}
    assert row["train_seconds"] == 400 / 20.0


def test_tfidf_only_matrix_marks_model_columns_pending(tmp_path: Path, monkeypatch) -> None:
    words = [f"w{i}" for i in range(40)]
    frame = pd.DataFrame(
        {
            "title": [f"{words[i % 40]} {words[(i * 7) % 40]} item {i}" for i in range(120)],
            "label": ["fake", "real"] * 60,
        }
    )
    frame.iloc[:60].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[60:].to_csv(tmp_path / "b.csv", index=False)
    (tmp_path / "mix.toml").write_text(
        f"[mix]\ntest_fraction = 0.2\nval_fraction = 0.2\n"
        f'[sources.a]\nfile = "{tmp_path}/a.csv"\n[sources.b]\nfile = "{tmp_path}/b.csv"\n'
    )
    out = tmp_path / "report"
    assert (
        cross_source.main(
            ["--sources", str(tmp_path / "mix.toml"), "--tfidf-only", "--out", str(out)]
        )
        == 0
    )
    report = json.loads(out.with_suffix(".json").read_text())
    assert [r["left_out"] for r in report["rows"]] == ["a", "b"]
    assert all(r["model"] is None for r in report["rows"])
    assert report["model_status"].startswith("pending")
    assert report["make_command"].startswith("make cross-source CROSS_SOURCE_FLAGS=")
    # Each left-out source is scored on its own test split only: 20% of 60 rows.
    assert report["rows"][0]["tfidf"]["left_out"]["n"] == 12
    # ... from a baseline that never saw it: train rows are the other source's.
    assert report["rows"][0]["tfidf"]["train_rows"] == 60 - 12 - 12
    table = out.with_suffix(".md").read_text()
    assert "pending" in table and "| a | 12 (6/6) | pending | pending | pending |" in table


def test_bad_mix_stops_the_script() -> None:
    from train_job.data import DataError

    with pytest.raises(DataError):
        cross_source.main(["--sources", "no-such-mix.toml", "--tfidf-only"])
