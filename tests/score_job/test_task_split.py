"""Tasks split the input by file and row range: every row lands in exactly one task, the same one
on every run, and together the tasks fill the table with one row per input row."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from score_job.job import InputFile, Plan, list_inputs, plan_split, task_pieces
from tests.score_job.conftest import posts_csv, rejects, run_tasks, table_rows


def _file(name: str) -> InputFile:
    return InputFile(name, 1, "1", "csv", name)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 40])
def test_every_row_goes_to_exactly_one_task(count: int) -> None:
    files = [_file(name) for name in ("a", "b", "c", "d")]
    plan = Plan(counts=[5, 0, 17, None])  # d is unreadable
    seen: list[tuple[str, int]] = []
    reported: list[str] = []
    for index in range(count):
        pieces, unreadable = task_pieces(files, plan, index, count)
        seen += [(p.file.uri, row) for p in pieces for row in range(p.start, p.end)]
        reported += [f.uri for f in unreadable]
        # Contiguous shares: a task's pieces follow each other in file and row order.
        assert len({p.file.uri for p in pieces}) == len(pieces)
    assert sorted(seen) == [("a", r) for r in range(5)] + [("c", r) for r in range(17)]
    assert reported == ["d"]  # the unreadable file is reported by one task only
    # Stable: asking again gives the same share.
    assert task_pieces(files, plan, count - 1, count) == task_pieces(files, plan, count - 1, count)


def test_shares_are_balanced() -> None:
    files = [_file("a"), _file("b")]
    sizes = [
        sum(p.end - p.start for p in task_pieces(files, Plan(counts=[10, 13]), i, 4)[0])
        for i in range(4)
    ]
    assert sum(sizes) == 23 and max(sizes) - min(sizes) <= 1


def test_a_folder_of_mixed_formats_scored_by_three_tasks(make_config, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    posts_csv(folder / "a.csv", [f"post number {i} about masks" for i in range(7)])
    (folder / "b.jsonl").write_text(
        "".join(f'{{"id": "j{i}", "text": "vaccine post {i}"}}\n' for i in range(5))
    )
    (folder / "sub").mkdir()
    pq.write_table(
        pa.table({"id": [f"q{i}" for i in range(4)], "text": [f"parquet {i}" for i in range(4)]}),
        folder / "sub" / "c.parquet",
    )
    (folder / "notes.txt").write_text("not an input: a folder takes known extensions only")
    cfg = make_config(input=str(folder))
    files = list_inputs(cfg)
    assert [Path(f.uri).name for f in files] == ["a.csv", "b.jsonl", "c.parquet"]
    assert plan_split(files, tmp_path / "scratch").counts == [7, 5, 4]

    summaries = run_tasks(cfg, 3)
    assert [s.rows_in for s in summaries] == [5, 5, 6]
    rows = table_rows(cfg.table)
    assert len(rows) == 16 == len({r["row_key"] for r in rows})
    assert sorted(r["id"] for r in rows) == sorted(
        [f"p{i}" for i in range(7)] + [f"j{i}" for i in range(5)] + [f"q{i}" for i in range(4)]
    )
    assert {r["shard"].rsplit("/", 1)[1] for r in rows} == {
        f"task-0000{i}-of-00003" for i in range(3)
    }
    assert rejects(Path(cfg.output)) == []


def test_another_task_count_for_the_same_input_is_refused(make_config, tmp_path: Path) -> None:
    from score_job.job import ScoreError

    cfg = make_config(input=str(posts_csv(tmp_path / "posts.csv")))
    run_tasks(cfg, 2)
    with pytest.raises(ScoreError, match="--task-count 2"):
        run_tasks(cfg, 3)
    assert len(table_rows(cfg.table)) == 12
