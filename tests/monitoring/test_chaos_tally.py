"""How `make chaos` compares the raw prediction table with what was answered, when a shadow
candidate logs rows beside the live ones (benchmarks/chaos.py: tally, shadow_tally). No server:
the answers and rows are built here."""

from __future__ import annotations

from typing import Any

from benchmarks.chaos import Answer, Traffic, shadow_tally, tally

OLD, NEW = "20240101T000000Z-aaaaaa", "20990101T000000Z-c4a05e0"


def _traffic(*answers: tuple[str, int, str]) -> Traffic:
    traffic = Traffic("http://127.0.0.1:1/", [], 1, "t")
    traffic.answers = [Answer(rid, n, 200, version, 0.0) for rid, n, version in answers]
    return traffic


def _row(request_id: str, index: int, version: str, shadow: bool | None) -> dict[str, Any]:
    suffix = "s" if shadow else "l"
    return {
        "row_id": f"{request_id}-{index}-{suffix}",
        "request_id": request_id,
        "instance_index": index,
        "model_version": version,
        "shadow": shadow,
    }


def test_shadow_rows_are_no_answers_and_no_duplicates_of_them() -> None:
    traffic = _traffic(("chaos-t-0-1", 2, OLD), ("chaos-t-0-2", 1, NEW))
    rows = [
        _row("chaos-t-0-1", 0, OLD, False),
        _row("chaos-t-0-1", 1, OLD, None),  # written before the column: an answer
        _row("chaos-t-0-2", 0, NEW, False),
        _row("chaos-t-0-1", 0, NEW, True),  # the candidate's score of the same prediction
        _row("chaos-t-0-1", 1, NEW, True),
    ]
    result = tally(traffic, rows, rows)
    assert result["rows_in_table_after_replay"] == 3
    assert result["rows_lost"] == 0
    assert result["duplicate_rows"] == 0
    assert result["responses_with_rows_of_another_version"] == 0
    shadow = shadow_tally(traffic, rows, NEW)
    assert shadow["shadow_rows"] == 2
    assert shadow["shadow_duplicates"] == 0
    assert shadow["row_ids_twice_in_raw_table"] == 0
    assert shadow["shadow_rows_of_candidate_answers"] == 0


def test_an_answer_logged_only_as_shadow_is_lost() -> None:
    traffic = _traffic(("chaos-t-0-1", 1, OLD))
    rows = [_row("chaos-t-0-1", 0, NEW, True)]
    assert tally(traffic, rows, rows)["rows_lost"] == 1


def test_shadow_rows_twice_or_of_the_candidates_own_answers_are_counted() -> None:
    traffic = _traffic(("chaos-t-0-1", 1, OLD), ("chaos-t-0-2", 1, NEW))
    twice = _row("chaos-t-0-1", 0, NEW, True)
    rows = [
        _row("chaos-t-0-1", 0, OLD, False),
        _row("chaos-t-0-2", 0, NEW, False),
        twice,
        dict(twice),  # the same row inserted twice
        _row("chaos-t-0-2", 0, NEW, True),  # a shadow of an answer the candidate gave itself
    ]
    shadow = shadow_tally(traffic, rows, NEW)
    assert shadow["shadow_rows"] == 3
    assert shadow["shadow_duplicates"] == 1
    assert shadow["row_ids_twice_in_raw_table"] == 1
    assert shadow["shadow_rows_of_candidate_answers"] == 1
    assert tally(traffic, rows, rows)["duplicate_rows"] == 0  # live rows: each once
