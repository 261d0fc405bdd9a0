"""A canary or shadow trial over a window of days (sql/views/candidate_comparison.sql): the
section `monitor` prints after the drift report, and the dashboard's table. Informational: it
never changes the monitor's exit code; promoting or aborting is a person's call
(docs/rollout.md)."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from monitoring._engines import Engine

Row = dict[str, Any]
COLUMNS = (
    ("day", "day", None),
    ("model_version", "model_version", None),
    ("kind", "kind", None),
    ("requests", "n_requests", None),
    ("traffic", "traffic_share", 3),
    ("paired", "n_paired", None),
    ("agree", "label_agreement", 3),
    ("|dscore|", "mean_abs_score_diff", 3),
    ("fake_rate", "fake_rate", 3),
    ("score_p50", "score_p50", 3),
    ("ood", "ood_share", 3),
    ("p50_ms", "latency_p50_ms", 1),
    ("p99_ms", "latency_p99_ms", 1),
)


def candidate_comparison(engine: Engine, start: datetime, end: datetime) -> list[Row]:
    """The view's rows for the days the window touches, in a stable order."""
    where = f"day >= DATE '{start:%Y-%m-%d}' AND day <= DATE '{end:%Y-%m-%d}'"
    rows = engine.view("candidate_comparison", where)
    return sorted(rows, key=lambda r: (r["day"], r["shadow"], r["model_version"]))


def has_candidate(rows: list[Row]) -> bool:
    """A shadow row, or two versions answering on one day (a canary, or a promotion)."""
    live_days = [(r["day"], r["model_version"]) for r in rows if not r["shadow"]]
    return any(r["shadow"] for r in rows) or len(live_days) > len({d for d, _ in live_days})


def _cell(row: Row, key: str, digits: int | None) -> str:
    if key == "kind":
        return "shadow" if row["shadow"] else "live"
    value = row[key]
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits is not None else str(value)


def candidate_text(rows: list[Row]) -> str:
    title = "Candidate comparison (canary and shadow; sql/views/candidate_comparison.sql)"
    if not has_candidate(rows):
        return title + "\n  no canary or shadow in the window"
    table = [[name for name, _, _ in COLUMNS]]
    table += [[_cell(r, key, digits) for _, key, digits in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = [" ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in table]
    return "\n".join([title, *("  " + line for line in lines)])


def candidate_html(rows: list[Row]) -> str:
    if not has_candidate(rows):
        return "<p>No canary or shadow in the window.</p>"
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _, _ in COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_cell(r, key, digits))}</td>" for _, key, digits in COLUMNS)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
