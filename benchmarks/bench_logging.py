"""What the prediction logger adds to a request: wall time of PredictionLogger.log() per
request (1 and 8 instances), with the DuckDB sink flushing in the background as it does in the
function, next to PREDICTION_LOG=none. Also the background write cost per 500-row batch.

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

from benchmarks.support import ROOT, make_rows
from prediction_log.dead_letter import DeadLetter
from prediction_log.logger import PredictionLogger
from prediction_log.sinks import DuckDBSink, NoneSink


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_log(sink_name: str, instances: int, requests: int, pace_s: float, tmp: Path) -> dict:
    sink = (
        DuckDBSink(f"duckdb://{tmp / f'{sink_name}-{instances}.duckdb'}")
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
        time.sleep(pace_s)  # requests are spaced, so the flush thread runs between them
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


def bench_write(tmp: Path, batches: int = 10) -> dict:
    sink = DuckDBSink(f"duckdb://{tmp / 'write.duckdb'}")
    times = []
    for i in range(batches):
        rows = make_rows(500, seed=100 + i)
        t = time.perf_counter()
        sink.write(rows)
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
        write = bench_write(tmp)
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "target_p50_ms": 1.0,
        "log_call": runs,
        "background_write": write,
        "meets_target": all(r["p50_ms"] <= 1.0 for r in runs),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Prediction logging overhead",
        "",
        f"`PredictionLogger.log()` per request, {args.requests} requests paced "
        f"{args.pace_ms} ms apart, {os.cpu_count()} CPUs. Target: p50 <= 1 ms. "
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
        f"Background DuckDB write of {write['rows_per_batch']} rows (off the request path): "
        f"p50 {write['p50_ms']:.1f} ms.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
