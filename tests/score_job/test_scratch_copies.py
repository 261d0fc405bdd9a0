"""Copies of gs:// objects go under the job's scratch folder, whatever the object's name: a name
with a `..`, `.` or empty part, or a leading `/`, is refused (that input becomes a rejected file)
instead of being written outside the folder or over another object's copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from score_job import storage
from score_job.job import InputFile, plan_split

ESCAPING = [
    "gs://bucket/../../escaped.csv",
    "gs://bucket/inputs/../../../../escaped.csv",
    "gs://bucket//etc/escaped.csv",
    "gs://bucket/inputs/./day1.csv",
    "gs://bucket/inputs//day1.csv",
    "gs://../escaped.csv",
]


@pytest.mark.parametrize("uri", ESCAPING)
def test_a_name_that_leaves_the_scratch_folder_is_refused(uri: str, tmp_path: Path) -> None:
    scratch = tmp_path / "work" / "scratch"
    with pytest.raises(ValueError, match="not copied under"):
        storage.local_copy(storage.StoredFile(uri, 10, "1"), scratch)
    with pytest.raises(ValueError, match="not copied under"):
        storage.fetch(uri, scratch)
    assert not (tmp_path / "escaped.csv").exists() and not (tmp_path / "work").exists()


def test_a_plain_name_is_copied_under_the_folder(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    target = storage.under_scratch(scratch / "inputs", "bucket", "in/day 1..csv", "@7")
    assert target == scratch / "inputs" / "bucket" / "in" / "day 1..csv@7"


def test_the_job_rejects_that_input_and_plans_the_others(tmp_path: Path) -> None:
    good = tmp_path / "day1.csv"
    good.write_text("id,text\n1,Masks work\n")
    files = [
        InputFile("gs://bucket/../../escaped.csv", 10, "1", "csv", "k1"),
        InputFile(str(good), good.stat().st_size, "1", "csv", "k2"),
    ]
    plan = plan_split(files, tmp_path / "scratch")
    assert plan.counts[0] is None and "'..' part" in plan.problems[files[0].uri]
    assert plan.counts[1] == 1
    assert not (tmp_path / "escaped.csv").exists()
