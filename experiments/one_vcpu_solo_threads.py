"""The function on one vCPU, as Terraform deploys it by default (function_cpu 1: THREADS 1,
ORT_INTRA_OP_THREADS 1), with SOLO_ORT_THREADS 1 (solo session off) against 2 (a second session
whose two threads busy-wait, the default before it followed the CPUs).

The function's processes are pinned to the first CPU of this process (taskset -c, all their
threads, before and after the model loads); the load generator (benchmarks/loadgen.py) runs on
another CPU, so that it does not take the function's one. Each setting is served afresh; the
settings alternate over `--rounds` so that a change in the machine's other load spreads over
both. Prints one JSON object (and writes it to `--out`).

    python -m experiments.one_vcpu_solo_threads BUNDLE_OR_POINTER --seconds 15 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.loadgen import official_test_posts, run_load, text_bodies
from testing.function_server import launch_function

SETTINGS = ("1", "2")  # SOLO_ORT_THREADS


def _pin(pid: int, cpu: int) -> None:
    """Pin every thread of `pid` and of its children to `cpu`."""
    import psutil

    for process in (psutil.Process(pid), *psutil.Process(pid).children(recursive=True)):
        for task in Path(f"/proc/{process.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(task.name), {cpu})


def serve_and_load(
    model_uri: str, solo_threads: str, concurrency: Sequence[int], seconds: float, tmp: Path
) -> dict[str, Any]:
    server_cpu, client_cpu = sorted(os.sched_getaffinity(0))[:2]
    env = {
        "MODEL_URI": model_uri,
        "THREADS": "1",
        "ORT_INTRA_OP_THREADS": "1",
        "SOLO_ORT_THREADS": solo_threads,
        "PREDICTION_LOG": "stdout",  # as deployed: one line per row, to the log file here
        "MODEL_REFRESH_SECONDS": "0",
    }
    served = launch_function(env, tmp / f"function-solo{solo_threads}.log")
    try:
        _pin(served.process.pid, server_cpu)
        served.wait_until_up()
        _pin(served.process.pid, server_cpu)  # threads made while the model loaded
        os.sched_setaffinity(0, {client_cpu})
        bodies = text_bodies(official_test_posts())
        out: dict[str, Any] = {}
        for callers in concurrency:
            probe = run_load(served.url, bodies, callers, 8 * callers)
            total = max(callers, int(seconds * probe.requests / probe.wall_s))
            out[f"c{callers}"] = run_load(served.url, bodies, callers, total).summary()
        return out
    finally:
        served.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_uri", help="bundle folder or production.json pointer")
    parser.add_argument("--seconds", type=float, default=15.0, help="about how long per load")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("needs two CPUs: one for the function, one for the load", file=sys.stderr)
        return 2
    affinity = os.sched_getaffinity(0)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            order = SETTINGS if round_index % 2 == 0 else tuple(reversed(SETTINGS))
            for solo in order:
                result = serve_and_load(
                    args.model_uri, solo, args.concurrency, args.seconds, Path(tmp)
                )
                os.sched_setaffinity(0, affinity)
                runs.append({"round": round_index, "solo_ort_threads": int(solo), **result})
                print(json.dumps(runs[-1]), file=sys.stderr)
    report = {
        "command": "python -m experiments.one_vcpu_solo_threads " + " ".join(argv or sys.argv[1:]),
        "setting": "function pinned to 1 CPU; THREADS 1, ORT_INTRA_OP_THREADS 1, stdout log",
        "runs": runs,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
