"""One static HTML page from the views: volume, latency percentiles, fake rate, out-of-domain
share, score and token-length histograms against the baseline, PSI over time, and the canary or
shadow comparison as a table. Plots are PNGs embedded as base64, so the page is a single file
that opens anywhere."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from monitoring._engines import Engine
from monitoring.candidates import candidate_comparison, candidate_html
from monitoring.monitor import DriftReport, sql_timestamp

Row = dict[str, Any]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _by_version(rows: list[Row], x: str) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r[x]):
        out[r["model_version"]].append(r)
    return out


def _lines(rows: list[Row], x: str, series: list[tuple[str, str]], title: str, ylabel: str) -> str:
    fig, ax = plt.subplots(figsize=(8, 3))
    for version, vrows in _by_version(rows, x).items():
        for key, label in series:
            points = [(r[x], r[key]) for r in vrows if r[key] is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker=".", label=f"{label} {version}".strip())
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return _png(fig)


def _histogram(rows: list[Row], distribution: str, title: str) -> str:
    """Live shares summed over the window's days (weighted by rows) next to the baseline."""
    fig, ax = plt.subplots(figsize=(8, 3))
    for version, vrows in _by_version(
        [r for r in rows if r["distribution"] == distribution], "bin_index"
    ).items():
        counts: dict[int, float] = defaultdict(float)
        base: dict[int, float] = {}
        lower: dict[int, float] = {}
        for r in vrows:
            counts[r["bin_index"]] += r["n_live"]
            base[r["bin_index"]] = r["baseline_share"]
            lower[r["bin_index"]] = r["bin_lower"]
        total = sum(counts.values()) or 1.0
        idx = sorted(base)
        ax.plot(idx, [base[i] for i in idx], "k--", label=f"baseline {version}")
        ax.bar(idx, [counts[i] / total for i in idx], alpha=0.5, label=f"live {version}")
        ax.set_xticks(idx, [f"≥{lower[i]:g}" for i in idx], fontsize=7)
    ax.set_title(title)
    ax.set_xlabel("bin (lower edge)")
    ax.set_ylabel("share")
    if ax.lines:
        ax.legend(fontsize=7)
    return _png(fig)


def render_dashboard(engine: Engine, start: datetime, end: datetime, report: DriftReport) -> str:
    where_hour = (
        f"hour >= TIMESTAMP '{sql_timestamp(start)}' AND hour < TIMESTAMP '{sql_timestamp(end)}'"
    )
    where_day = f"day >= DATE '{start:%Y-%m-%d}' AND day <= DATE '{end:%Y-%m-%d}'"
    hourly = engine.view("hourly_metrics", where_hour)
    daily = engine.view("daily_drift", where_day)
    hist = engine.view("daily_histograms", where_day)
    plots = [
        ("Volume", _lines(hourly, "hour", [("n_predictions", "")], "Predictions per hour", "rows")),
        (
            "Latency",
            _lines(
                hourly,
                "hour",
                [("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_p99_ms", "p99")],
                "Model latency per request",
                "ms",
            ),
        ),
        ("Fake rate", _lines(hourly, "hour", [("fake_rate", "")], "Share labelled fake", "share")),
        (
            "Out-of-domain share",
            _lines(hourly, "hour", [("ood_share", "")], "Share flagged out of domain", "share"),
        ),
        ("Score histogram", _histogram(hist, "score", "P(fake): live vs training baseline")),
        ("Token length", _histogram(hist, "token_length", "Token count: live vs baseline")),
        (
            "PSI",
            _lines(
                daily,
                "day",
                [("score_psi", "score"), ("token_length_psi", "tokens")],
                f"Daily PSI (threshold {report.threshold:g})",
                "PSI",
            ),
        ),
    ]
    body = "\n".join(
        f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="data:image/png;base64,{p}">'
        for t, p in plots
    )
    candidates = candidate_html(candidate_comparison(engine, start, end))
    body += f"\n<h2>Candidate comparison</h2>{candidates}"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>fakenews-detector monitoring"
        "</title><style>body{font-family:sans-serif;max-width:960px;margin:auto}"
        "pre{background:#f4f4f4;padding:8px;overflow-x:auto}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 4px}"
        "</style></head><body>"
        f"<h1>fakenews-detector monitoring</h1><p>{len(hourly)} version-hours, "
        f"{sum(r['n_predictions'] for r in hourly)} predictions.</p>"
        f"<pre>{html.escape(report.text())}</pre>{body}</body></html>"
    )


def write_dashboard(
    engine: Engine, start: datetime, end: datetime, report: DriftReport, path: Path
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_dashboard(engine, start, end, report), encoding="utf-8")
    return path
