"""What the prediction logger adds to a request: wall time of PredictionLogger.log() per
request (1 and 8 instances) with the local sink as the function builds it (PREDICTION_LOG=
duckdb://: a line appended beside the DuckDB file before log() returns), next to
PREDICTION_LOG=none. Also what loading the spooled lines into the table costs per 500 rows.

    python -m benchmarks.bench_logging   (make bench-logging)
writes reports/bench_logging.json and reports/bench_logging.md. Target: p50 <= 1 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import processor
from prediction_log.dead_letter import DeadLetter
from prediction_log.line_spool import LineSpoolSink, connect_and_load
from prediction_log.logger import PredictionLogger
from prediction_log.sinks import NoneSink
from testing.crafted_rows import make_rows
from testing.paths import ROOT


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_log(sink_name: str, instances: int, requests: int, pace_s: float, tmp: Path) -> dict:
    sink = (
        LineSpoolSink(f"duckdb://{tmp / f'{sink_name}-{instances}.duckdb'}")
        if sink_name == "duckdb"
        else NoneSink()
    )
    logger = PredictionLogger(sink, DeadLetter(str(tmp / "dead")))
    rows = make_rows(requests * instances, per_request=instances, seed=instances)
    # The function hands over fresh dicts per request; pre-build them so only log() is timed.
    batches = [rows[i : i + instances] for i in range(0, len(rows), instances)]
    times = []
    for batch in batches:
        t = time.perf_counter()
        logger.log(batch)
        times.append((time.perf_counter() - t) * 1000)
        time.sleep(pace_s)  # requests are spaced, as a server's are
    t = time.perf_counter()
    logger.close()
    return {
        "sink": sink_name,
        "instances_per_request": instances,
        "requests": requests,
        "p50_ms": _quantile(times, 0.5),
        "p95_ms": _quantile(times, 0.95),
        "p99_ms": _quantile(times, 0.99),
        "mean_ms": statistics.fmean(times),
        "close_ms": (time.perf_counter() - t) * 1000,
        "written": logger.counts["written"],
        "spilled": logger.counts["spilled"],
    }


def bench_load(tmp: Path, batches: int = 10) -> dict:
    """Load 500 spooled rows at a time into a growing table, as a reader of the log does."""
    database = tmp / "load.duckdb"
    times = []
    for i in range(batches):
        sink = LineSpoolSink(f"duckdb://{database}")
        sink.write(make_rows(500, seed=100 + i))
        sink.close()
        t = time.perf_counter()
        connect_and_load(database, lock_wait_s=10).close()
        times.append((time.perf_counter() - t) * 1000)
    return {"rows_per_batch": 500, "batches": batches, "p50_ms": statistics.median(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--pace-ms", type=float, default=1.0)
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_logging"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        runs = [
            bench_log(sink, n, args.requests, args.pace_ms / 1000, tmp)
            for sink in ("none", "duckdb")
            for n in (1, 8)
        ]
        load = bench_load(tmp)
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": processor(),
        },
        "target_p50_ms": 1.0,
        "log_call": runs,
        "load_into_table": load,
        "meets_target": all(r["p50_ms"] <= 1.0 for r in runs),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Prediction logging overhead",
        "",
        f"`PredictionLogger.log()` per request, {args.requests} requests paced "
        f"{args.pace_ms} ms apart, {os.cpu_count()} CPUs ({result['machine']['processor']}). "
        "Target: p50 <= 1 ms. "
        "Produced by `make bench-logging`.",
        "",
        "| sink | instances/request | p50 ms | p95 ms | p99 ms | rows written | spilled |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['sink']} | {r['instances_per_request']} | {r['p50_ms']:.4f} | {r['p95_ms']:.4f} | "
        f"{r['p99_ms']:.4f} | {r['written']} | {r['spilled']} |"
        for r in runs
    ]
    lines += [
        "",
        "duckdb: the function's local sink, a JSON line per row appended to a file beside the "
        "DuckDB file before log() returns.",
        f"Loading {load['rows_per_batch']} spooled rows into the table (done by the log's "
        f"readers, off the request path): p50 {load['p50_ms']:.1f} ms.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
