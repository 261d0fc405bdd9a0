"""The views on the embedded DuckDB log, checked against numbers computed here in Python from
the same crafted rows (latency percentiles, rates, out-of-domain share, PSI, comparisons)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitoring._engines import DuckDBEngine
from monitoring.monitor import window_drift
from prediction_log.sinks import make_sink
from tests.monitoring._crafted import BASELINE, DAY, VERSION_A, VERSION_B, make_rows


def _write(engine: DuckDBEngine, rows: list[dict[str, Any]]) -> None:
    result = make_sink(f"duckdb://{engine.path}").write([dict(r, text=None) for r in rows])
    assert not result.retryable and not result.rejected


def _psi(values: list[float], edges: list[float], expected: list[float]) -> float:
    counts, _ = np.histogram(values, bins=edges)  # last bin closed, like upper_inclusive
    live = np.maximum(counts / len(values), 1e-4)
    base = np.maximum(np.array(expected), 1e-4)
    return float(np.sum((live - base) * np.log(live / base)))


def _hour(ts: str) -> datetime:
    return datetime.fromisoformat(ts).replace(minute=0, second=0, microsecond=0)


def test_hourly_metrics(duck: DuckDBEngine) -> None:
    rows = make_rows(600, per_request=3) + make_rows(90, version=VERSION_B, seed=5)
    _write(duck, rows)
    got = {(r["model_version"], r["hour"]): r for r in duck.view("hourly_metrics")}
    groups: dict[tuple[str, datetime], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["model_version"], _hour(r["ts"]))].append(r)
    assert set(got) == set(groups)
    for key, members in groups.items():
        view = got[key]
        firsts = [m["latency_ms"] for m in members if m["instance_index"] == 0]
        scored = [m for m in members if m["in_domain"] is not None]
        assert view["n_predictions"] == len(members)
        assert view["n_requests"] == sum(m["instance_index"] == 0 for m in members)
        assert view["fake_rate"] == pytest.approx(
            sum(m["label"] == "fake" for m in members) / len(members)
        )
        assert view["mean_fake_probability"] == pytest.approx(
            np.mean([m["fake_probability"] for m in members])
        )
        for q in (50, 95, 99):
            assert view[f"latency_p{q}_ms"] == pytest.approx(np.percentile(firsts, q))
        if scored:
            assert view["ood_share"] == pytest.approx(
                sum(not m["in_domain"] for m in scored) / len(scored)
            )
        else:
            assert view["ood_share"] is None and view["n_ood_scored"] == 0


def test_daily_drift_psi_matches_python(duck: DuckDBEngine) -> None:
    rows = make_rows(800) + make_rows(400, shifted=True, seed=3, start=DAY + timedelta(days=1))
    _write(duck, rows)
    by_day = {r["day"]: r for r in duck.view("daily_drift")}
    for day in (DAY.date(), (DAY + timedelta(days=1)).date()):
        members = [r for r in rows if r["ts"][:10] == day.isoformat()]
        scores = [r["fake_probability"] for r in members]
        tokens = [r["token_count"] for r in members]
        view = by_day[day]
        assert view["n_predictions"] == len(members)
        assert view["score_psi"] == pytest.approx(
            _psi(scores, BASELINE["score_bins"], BASELINE["score_hist"])
        )
        assert view["token_length_psi"] == pytest.approx(
            _psi(tokens, BASELINE["token_length_bins"], BASELINE["token_length_hist"])
        )
        assert view["baseline_truncation_rate"] == BASELINE["truncation_rate"]
    assert (
        by_day[DAY.date()]["score_psi"]
        < 0.1
        < 1
        < by_day[(DAY + timedelta(days=1)).date()]["score_psi"]
    )


def test_histogram_shares_sum_to_one(duck: DuckDBEngine) -> None:
    _write(duck, make_rows(300))
    hist = duck.view("daily_histograms")
    for distribution in ("score", "token_length"):
        bins = [h for h in hist if h["distribution"] == distribution]
        assert len(bins) == len(BASELINE[f"{distribution}_hist"])
        assert sum(h["live_share"] for h in bins) == pytest.approx(1.0)
        assert sum(h["n_live"] for h in bins) == 300


def test_window_query_equals_daily_view_over_a_whole_day(duck: DuckDBEngine) -> None:
    _write(duck, make_rows(500) + make_rows(100, seed=9, start=DAY + timedelta(days=1)))
    daily = next(r for r in duck.view("daily_drift") if r["day"] == DAY.date())
    (window,) = window_drift(duck, DAY, DAY + timedelta(days=1))
    for key, value in window.items():
        assert (
            daily[key] == pytest.approx(value) if isinstance(value, float) else daily[key] == value
        )


def test_model_comparison_on_shared_texts(duck: DuckDBEngine) -> None:
    old = make_rows(200)
    new = [
        dict(r, model_version=VERSION_B, request_id="b" + r["request_id"], row_id="b" + r["row_id"])
        for r in old
    ]
    for r in new[:50]:  # the new version disagrees on the first 50 texts
        r["label"] = "real" if r["label"] == "fake" else "fake"
        r["fake_probability"] = 1.0 - r["fake_probability"]
    _write(duck, old + new)
    (pair,) = duck.view("model_comparison")
    assert (pair["version_a"], pair["version_b"]) == (VERSION_A, VERSION_B)
    assert pair["shared_texts"] == len({r["text_sha256"] for r in old})
    assert pair["label_agreement"] == pytest.approx(150 / 200)
    expected_diff = np.mean(
        [abs(a["fake_probability"] - b["fake_probability"]) for a, b in zip(old, new, strict=True)]
    )
    assert pair["mean_abs_score_diff"] == pytest.approx(expected_diff)
    assert pair["n_predictions_a"] == pair["n_predictions_b"] == 200


def test_views_are_created_in_the_duckdb_file(duck: DuckDBEngine, tmp_path: Path) -> None:
    _write(duck, make_rows(10))
    duck.create_views()
    rows = duck.query("SELECT SUM(n_predictions) AS n FROM `main.hourly_metrics`")
    assert rows == [{"n": 10}]
    assert not math.isnan(duck.query("SELECT MAX(score_psi) AS p FROM `main.daily_drift`")[0]["p"])


def test_window_ending_now_counts_rows_logged_this_second(duck: DuckDBEngine) -> None:
    # The window literals hold whole seconds; rows from the last fraction of a second (the
    # predictions just made, when a monitor runs right after them) must still count.
    end = DAY + timedelta(hours=1, microseconds=250_000)
    rows = make_rows(4, start=end - timedelta(microseconds=200_000), span=timedelta(microseconds=1))
    _write(duck, rows)
    (window,) = window_drift(duck, DAY, end)
    assert window["n_predictions"] == 4


VERSION_C = "20240301T000000Z-cccccc"


def _canary_and_shadow_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Production (A) answers 150 requests and a canary (B) 50 others; a shadow (C) scores the
    texts of A's first 100 requests, disagreeing on its first 30 rows. Returns (all, shadow)."""
    production = make_rows(300, per_request=2)
    canary = make_rows(100, version=VERSION_B, seed=7, per_request=2, request_prefix="canary")
    shadow = []
    for k, r in enumerate(production[:200]):
        flipped = k < 30
        shadow.append(
            dict(
                r,
                model_version=VERSION_C,
                shadow=True,
                row_id="shadow-" + r["row_id"],
                label=("real" if r["label"] == "fake" else "fake") if flipped else r["label"],
                fake_probability=(1 - r["fake_probability"]) if flipped else r["fake_probability"],
                latency_ms=r["latency_ms"] * 3,
                cold_start=False,
            )
        )
    return production + canary + shadow, shadow


def test_candidate_comparison_pairs_shadow_rows_with_the_answers_of_their_request(
    duck: DuckDBEngine,
) -> None:
    rows, shadow = _canary_and_shadow_rows()
    _write(duck, rows)
    got = {(r["model_version"], r["shadow"]): r for r in duck.view("candidate_comparison")}
    assert set(got) == {(VERSION_A, False), (VERSION_B, False), (VERSION_C, True)}
    live_requests = 150 + 50
    assert got[(VERSION_A, False)]["traffic_share"] == pytest.approx(150 / live_requests)
    assert got[(VERSION_B, False)]["traffic_share"] == pytest.approx(50 / live_requests)
    assert got[(VERSION_C, True)]["traffic_share"] == pytest.approx(100 / live_requests)

    c = got[(VERSION_C, True)]
    assert c["n_predictions"] == c["n_paired"] == 200
    assert c["label_agreement"] == pytest.approx(170 / 200)
    by_row = {r["row_id"]: r for r in rows}
    diffs = [
        abs(s["fake_probability"] - by_row[s["row_id"].removeprefix("shadow-")]["fake_probability"])
        for s in shadow
    ]
    assert c["mean_abs_score_diff"] == pytest.approx(np.mean(diffs))
    for version, is_shadow in got:
        members = [
            r for r in rows if r["model_version"] == version and bool(r.get("shadow")) == is_shadow
        ]
        view = got[(version, is_shadow)]
        scores = [m["fake_probability"] for m in members]
        assert view["fake_rate"] == pytest.approx(
            sum(m["label"] == "fake" for m in members) / len(members)
        )
        for q in (10, 50, 90):
            assert view[f"score_p{q}"] == pytest.approx(np.percentile(scores, q))
        firsts = [m["latency_ms"] for m in members if m["instance_index"] == 0]
        assert view["latency_p99_ms"] == pytest.approx(np.percentile(firsts, 99))
        if not is_shadow:
            assert view["n_paired"] == 0 and view["label_agreement"] is None


def test_live_views_leave_shadow_rows_out(duck: DuckDBEngine) -> None:
    rows, shadow = _canary_and_shadow_rows()
    _write(duck, rows)
    live = len(rows) - len(shadow)
    assert sum(r["n_predictions"] for r in duck.view("hourly_metrics")) == live
    assert {r["model_version"] for r in duck.view("hourly_metrics")} == {VERSION_A, VERSION_B}
    assert sum(r["n_predictions"] for r in duck.view("daily_drift")) == live
    (window,) = [r for r in window_drift(duck, DAY, DAY + timedelta(days=1))
                 if r["model_version"] == VERSION_A]  # fmt: skip
    assert window["n_predictions"] == 300
