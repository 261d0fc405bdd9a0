"""Bad input is counted, never a crash and never a silently missing row: per task, rows in =
rows scored + rows rejected, each reject in the rejects file with its reason, and a file that
cannot be read at all is one reject of the whole file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from score_job.job import run
from tests.score_job.conftest import rejects, run_tasks, table_rows, write_csv


def test_rows_in_equal_rows_scored_plus_rows_rejected(make_config, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    good = [{"id": f"g{i}", "title": f"title {i}", "text": f"body of post {i}"} for i in range(6)]
    bad = [
        {"id": "empty", "title": " ", "text": ""},
        {"id": "long", "title": "t", "text": "x" * 500},
    ]
    write_csv(folder / "a.csv", good + bad)
    with (folder / "a.csv").open("a", encoding="utf-8") as handle:
        handle.write('short,"row"\n')  # two fields, the header has three
    write_csv(folder / "b.csv", [{"id": "n1", "body": "no text columns here"}])
    (folder / "c.jsonl").write_text(
        '{"id": "j1", "title": "ok", "text": "fine"}\n'
        "{not json\n"
        '["a", "list"]\n'
        '{"id": "j4", "title": "no text key"}\n'
    )
    (folder / "d.parquet").write_bytes(b"PAR1 this is not a parquet file")

    cfg = make_config(input=str(folder), text_columns="title,text", max_text_chars=200)
    summaries = run_tasks(cfg, 2)
    for summary in summaries:
        assert summary.rows_in == summary.rows_scored + summary.rows_rejected
    assert sum(s.rows_in for s in summaries) == 9 + 1 + 4  # rows of the readable files
    assert sum(s.rows_scored for s in summaries) == 7

    found = rejects(Path(cfg.output))
    assert Counter(r["reason"] for r in found) == {
        "empty_text": 1,
        "text_too_long": 1,
        "malformed_row": 3,
        "missing_column": 2,
        "unreadable_file": 1,
    }
    [unreadable] = [r for r in found if r["reason"] == "unreadable_file"]
    assert unreadable["source_uri"].endswith("d.parquet") and unreadable["source_row"] is None
    assert sum(len(s.unreadable_files) for s in summaries) == 1
    assert {
        (Path(r["source_uri"]).name, r["source_row"]) for r in found if r["source_row"] is not None
    } == {
        ("a.csv", 6),
        ("a.csv", 7),
        ("a.csv", 8),
        ("b.csv", 0),
        ("c.jsonl", 1),
        ("c.jsonl", 2),
        ("c.jsonl", 3),
    }
    rows = table_rows(cfg.table)
    assert len(rows) == 7
    # Title and text joined as the train job joins them.
    assert {r["char_count"] for r in rows if r["id"] == "g0"} == {len("title 0. body of post 0")}


def test_a_task_with_only_bad_input_still_finishes(make_config, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(b"text\n\xff\xfe not utf-8\n")
    summary = run(make_config(input=str(path)))
    assert (summary.rows_in, summary.rows_scored, summary.unreadable_files) == (0, 0, [str(path)])
    assert [r["reason"] for r in rejects(Path(make_config().output))] == ["unreadable_file"]
