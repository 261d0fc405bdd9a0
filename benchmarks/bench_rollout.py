"""A candidate beside production: the function's memory with both bundles loaded, and what a
shadow costs the live answers.

A store of its own (default local/bench_rollout_store) holds the bundle twice, under its own
version and a clone's; the function serves the first and the pointer names the clone as a shadow.
Memory: PSS (and RSS) of the serving worker from /proc/PID/smaps_rollup, warm with production
alone and again with the shadow loaded and scoring. Latency: rounds of requests from THREADS clients
(ordinary posts), each pausing a random think time between its requests (exponential, mean
--think-ms) so the instance has idle moments as under real traffic (a saturated instance has no
room for shadow work: it drops it), shadow on and off alternately; p50 and p99 of the live
answers as the client sees them. The machine's load average is recorded: on a busy machine
the numbers are measured under load and say so.

    python -m benchmarks.bench_rollout [--bundle DIR] [--requests 200] [--rounds 3]
(make bench-rollout) writes reports/bench_rollout.json and reports/bench_rollout.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from artifact_store import open_store
from benchmarks.report import processor
from export import publish
from testing.function_server import serve_function
from testing.paths import ROOT

DATA = ROOT / "data" / "constraint-covid19-fakenews" / "Constraint_Val.csv"
DEFAULT_BUNDLE = "local/store/models/production.json"
LOAD_TIMEOUT_S = 300.0


def serving_worker(pid: int) -> psutil.Process:
    process = psutil.Process(pid)
    return max([process, *process.children(recursive=True)], key=lambda p: p.memory_info().rss)


def memory_mib(pid: int) -> dict[str, float]:
    """Pss and Rss of the process, from /proc/PID/smaps_rollup (PSS: shared pages divided among
    the processes mapping them, so two sessions of one file are not counted twice)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Pss", "Rss"):
            fields[name.lower() + "_mib"] = round(int(rest.split()[0]) / 1024, 1)
    return fields


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def make_store(bundle: Path, root: Path) -> tuple[str, str]:
    """The bundle as production and a clone under another version: (production, candidate)."""
    shutil.rmtree(root, ignore_errors=True)
    store = open_store(root)
    production = publish.publish(bundle, store)
    publish.promote(store, production)
    clone = root.parent / f"{root.name}-clone"
    shutil.rmtree(clone, ignore_errors=True)
    shutil.copytree(bundle, clone)
    manifest = json.loads((clone / "manifest.json").read_text())
    candidate = production[:-1] + ("1" if production.endswith("0") else "0")  # last hex digit
    manifest["version"] = candidate
    (clone / "manifest.json").write_text(json.dumps(manifest, indent=2))
    publish.publish(clone, store)
    shutil.rmtree(clone)
    return production, candidate


def wait_for_candidate(url: str, loaded: bool) -> None:
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        candidate = requests.get(url, timeout=30).json().get("candidate")
        if (candidate is not None and candidate["loaded"]) == loaded:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the candidate did not become loaded={loaded}")


def load_round(
    url: str, posts: list[str], requests_n: int, clients: int, think_ms: float = 0.0
) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = requests_n // clients

    def client(offset: int) -> None:
        rng = random.Random(offset)
        with requests.Session() as session:
            for k in range(per_client):
                if think_ms:
                    time.sleep(rng.expovariate(1000.0 / think_ms))
                text = posts[(offset * per_client + k) % len(posts)]
                t0 = time.perf_counter()
                session.post(url, json={"text": text}, timeout=60).raise_for_status()
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bundle", default=DEFAULT_BUNDLE, help="bundle folder or a store's production pointer"
    )
    parser.add_argument("--store", default="local/bench_rollout_store")
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per setting, alternating")
    parser.add_argument("--think-ms", type=float, default=50.0, help="mean pause of a client")
    parser.add_argument("--out", default="reports/bench_rollout")
    args = parser.parse_args()
    bundle = (ROOT / args.bundle).resolve()
    if bundle.name == "production.json":
        if not bundle.exists():
            print(f"no promoted bundle at {bundle}: run `make run` first", file=sys.stderr)
            return 2
        bundle = bundle.parent / json.loads(bundle.read_text())["version"]
    root = (ROOT / args.store).resolve()
    production, candidate = make_store(bundle, root)
    store = open_store(root)
    posts = [row["tweet"] for row in csv.DictReader(DATA.open(encoding="utf-8"))]
    threads = int(os.environ.get("THREADS", "2"))
    report: dict[str, Any] = {
        "bundle_version": production,
        "candidate_version": candidate,
        "cpus": os.cpu_count(),
        "processor": processor(),
        "threads": threads,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "requests_per_round": args.requests,
        "think_ms": args.think_ms,
    }
    served = serve_function(
        {"MODEL_URI": str(root / "models" / "production.json"), "MODEL_REFRESH_SECONDS": "1"},
        root.parent / "bench_rollout_function.log",
    )
    try:
        requests.post(served.url, json={"text": posts[0]}, timeout=120).raise_for_status()
        load_round(served.url, posts, 40, threads)
        worker = serving_worker(served.process.pid).pid
        report["memory_production_only"] = memory_mib(worker)
        publish.start_candidate(store, candidate, "shadow")
        wait_for_candidate(served.url, loaded=True)
        load_round(served.url, posts, 40, threads)
        report["memory_with_shadow"] = memory_mib(worker)

        latencies: dict[str, list[float]] = {"shadow on": [], "shadow off": []}
        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            for setting in (
                ("shadow on", "shadow off") if r % 2 == 0 else ("shadow off", "shadow on")
            ):
                wanted = setting == "shadow on"
                if wanted and publish.read_pointer(store).get("candidate") is None:
                    publish.start_candidate(store, candidate, "shadow")
                elif not wanted and publish.read_pointer(store).get("candidate") is not None:
                    publish.abort_candidate(store)
                wait_for_candidate(served.url, loaded=wanted)
                got = load_round(served.url, posts, args.requests, threads, args.think_ms)
                latencies[setting] += got
                rounds.append(
                    {
                        "setting": setting,
                        "p50_ms": percentile(got, 0.5),
                        "p99_ms": percentile(got, 0.99),
                    }
                )
                if wanted:  # cumulative over the run: the worker keeps its counts
                    health = requests.get(served.url, timeout=30).json()
                    report["shadow_counts"] = health["candidate"]["shadow"]
        report["rounds"] = rounds
        report["latency"] = {
            setting: {
                "requests": len(values),
                "p50_ms": percentile(values, 0.5),
                "p99_ms": percentile(values, 0.99),
                "mean_ms": round(statistics.fmean(values), 2),
            }
            for setting, values in latencies.items()
        }
    finally:
        served.stop()
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_report(report, ROOT / args.out)
    return 0


def write_report(report: dict[str, Any], out: Path) -> None:
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    on, off = report["latency"]["shadow on"], report["latency"]["shadow off"]
    alone, both = report["memory_production_only"], report["memory_with_shadow"]
    lines = [
        "# A candidate beside production: memory and shadow cost (`make bench-rollout`)",
        "",
        f"Bundle {report['bundle_version']} as production and a copy as the shadow candidate "
        f"{report['candidate_version']}; {report['cpus']} CPUs ({report['processor']}), "
        f"THREADS={report['threads']} "
        f"clients pausing {report['think_ms']:g} ms on average between requests, "
        f"{report['requests_per_round']} ordinary posts per round, shadow on and off "
        "alternately. **Measured under load**: load average "
        f"{report['loadavg_start']} at start, {report['loadavg_end']} at end (other work shared "
        "the CPUs), so compare the settings with each other, not with other reports.",
        "",
        "| serving worker | PSS MiB | RSS MiB |",
        "|---|---|---|",
        f"| production only, warm | {alone['pss_mib']} | {alone['rss_mib']} |",
        f"| production + shadow loaded and scoring | {both['pss_mib']} | {both['rss_mib']} |",
        "",
        "| live answers | requests | p50 ms | p99 ms | mean ms |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {v['requests']} | {v['p50_ms']} | {v['p99_ms']} | {v['mean_ms']} |"
            for name, v in (("shadow off", off), ("shadow on", on))
        ),
        "",
        f"Shadow work over the run: {report['shadow_counts']} (dropped: the worker was behind "
        "and the request's shadow scoring was skipped; live answers never wait for it).",
        "",
        "Per round: "
        + ", ".join(f"{r['setting']} {r['p50_ms']}/{r['p99_ms']} ms" for r in report["rounds"])
        + " (p50/p99).",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
