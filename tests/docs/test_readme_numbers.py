"""The README quotes serving ratios, never raw timings, and only as the committed report has them
(reports/bench_serve_compare.json, written by `make bench-serve-compare`)."""

from __future__ import annotations

import json

from tests.conftest import ROOT

REPORT = ROOT / "reports" / "bench_serve_compare.json"


def quoted_ratios(ratios: dict[str, float]) -> str:
    return (
        f"p50 {ratios['p50_c1']}x, p99 {ratios['p99_c1']}x and throughput at 16 concurrent "
        f"callers {ratios['throughput_c16']}x"
    )


def test_readme_serving_ratios_are_the_committed_reports() -> None:
    ratios = json.loads(REPORT.read_text())["ratios"]["product, DuckDB log"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert quoted_ratios(ratios) in readme, f"README should say: {quoted_ratios(ratios)}"
    assert "reports/bench_serve_compare.md" in readme
