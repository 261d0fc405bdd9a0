"""Memory of the prediction function under long-text load, per glibc allocator setting.

onnxruntime's own arena is off in the function (it kept the largest call's peak forever), so
every tensor goes through glibc malloc; with threads, glibc's per-thread arenas and its dynamic
mmap threshold keep freed blocks mapped. This measures, for each setting, the serving worker's
RSS warm, its peak (VmHWM) and its RSS after a stress of 4 concurrent clients each sending 16 long
texts per request, then single-request latency on ordinary posts (c=1), so that a memory saving
is never bought with unmeasured latency.

    python -m benchmarks.bench_memory [--store local/store] [--rounds 20]   (make bench-memory)
writes reports/bench_memory.json and reports/bench_memory.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from benchmarks.report import processor
from testing.function_server import serve_function
from testing.paths import ROOT

DATA = ROOT / "data" / "constraint-covid19-fakenews" / "Constraint_Train.csv"
# glibc reads these at process start (mallopt(3)); the function's environment is where they go.
SETTINGS: dict[str, dict[str, str]] = {
    "glibc defaults": {},
    "MALLOC_ARENA_MAX=2": {"MALLOC_ARENA_MAX": "2"},
    "MALLOC_MMAP_THRESHOLD_=131072": {"MALLOC_MMAP_THRESHOLD_": "131072"},
    "MALLOC_MMAP_THRESHOLD_=1048576": {"MALLOC_MMAP_THRESHOLD_": "1048576"},
}


def worker_memory(pid: int) -> dict[str, float]:
    process = psutil.Process(pid)
    worker = max([process, *process.children(recursive=True)], key=lambda p: p.memory_info().rss)
    fields = {}
    for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            fields[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return {"rss_mib": fields["VmRSS"], "peak_rss_mib": fields["VmHWM"]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def measure(
    env: dict[str, str], pointer: Path, posts: list[str], rounds: int, tmp: Path
) -> dict[str, Any]:
    rng = random.Random(0)

    def long_text() -> str:  # far beyond max_length: the model sees its first max_length tokens
        return " ".join(rng.sample(posts, 20))[:19_000]

    served = serve_function({**env, "MODEL_URI": str(pointer)}, tmp / "function.log")
    try:
        requests.post(served.url, json={"text": posts[0]}, timeout=30).raise_for_status()
        warm = worker_memory(served.process.pid)
        failures: list[int] = []

        def client() -> None:
            with requests.Session() as session:
                for _ in range(rounds):
                    body = {"instances": [{"text": long_text()} for _ in range(16)]}
                    response = session.post(served.url, json=body, timeout=120)
                    if response.status_code != 200:
                        failures.append(response.status_code)

        started = time.perf_counter()
        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        stress_s = time.perf_counter() - started
        after = worker_memory(served.process.pid)
        latencies = []
        with requests.Session() as session:
            for text in posts[1:301]:
                t0 = time.perf_counter()
                session.post(served.url, json={"text": text}, timeout=30).raise_for_status()
                latencies.append((time.perf_counter() - t0) * 1000)
    finally:
        served.stop()
    return {
        "env": env,
        "warm_rss_mib": warm["rss_mib"],
        "stress_peak_rss_mib": after["peak_rss_mib"],
        "after_stress_rss_mib": after["rss_mib"],
        "stress_seconds": round(stress_s, 2),
        "stress_failures": len(failures),
        "c1_p50_ms": percentile(latencies, 0.5),
        "c1_p99_ms": percentile(latencies, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=os.environ.get("STORE", "local/store"))
    parser.add_argument("--rounds", type=int, default=20, help="requests per stress client")
    parser.add_argument("--out", default="reports/bench_memory")
    args = parser.parse_args()
    pointer = (ROOT / args.store / "models" / "production.json").resolve()
    if not pointer.exists():
        print(f"no promoted bundle at {pointer}: run `make run` first", file=sys.stderr)
        return 2
    posts = [row["tweet"] for row in csv.DictReader(DATA.open(encoding="utf-8"))]
    report: dict[str, Any] = {
        "bundle_version": json.loads(pointer.read_text())["version"],
        "cpus": os.cpu_count(),
        "processor": processor(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "stress": f"4 clients x {args.rounds} requests x 16 texts of ~19,000 characters",
        "settings": {},
    }
    for name, env in SETTINGS.items():
        print(f"{name} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            report["settings"][name] = measure(env, pointer, posts, args.rounds, Path(tmp))
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = ROOT / args.out
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Function memory under long-text load (`make bench-memory`)",
        "",
        f"Bundle {report['bundle_version']}, {report['cpus']} CPUs ({report['processor']}), "
        "load average "
        f"{report['loadavg_start']} at start, {report['loadavg_end']} at end. Stress: "
        f"{report['stress']}, function defaults otherwise (THREADS, ORT threads, batch bounds). "
        "RSS of the serving worker; latency = one ordinary post per request after the stress.",
        "",
        "| allocator setting | warm RSS MiB | stress peak MiB | RSS after MiB | stress s "
        "| failures | c=1 p50 ms | c=1 p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["settings"].items():
        lines.append(
            f"| {name} | {r['warm_rss_mib']} | {r['stress_peak_rss_mib']} | "
            f"{r['after_stress_rss_mib']} | {r['stress_seconds']} | {r['stress_failures']} | "
            f"{r['c1_p50_ms']} | {r['c1_p99_ms']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
