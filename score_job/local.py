"""Run the scoring job's tasks locally, as Cloud Run runs them: N separate processes of
``python -m score_job``, each given CLOUD_RUN_TASK_INDEX and CLOUD_RUN_TASK_COUNT.

    python -m score_job.local --tasks 4 -- --input data/x.csv --text-columns tweet

Everything after ``--`` goes to every task. Each task gets an equal share of this machine's CPUs
for onnxruntime (FND_SCORE_THREADS, unless set) and logs its progress as lines (bars from several
processes would interleave). Prints the tasks' totals; exits with the worst task's code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from score_job.job import available_cpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m score_job.local", description=__doc__)
    parser.add_argument("--tasks", type=int, default=4, help="number of task processes")
    parser.add_argument("job_args", nargs=argparse.REMAINDER, help="-- then score_job flags")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be >= 1")
    job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
    env = dict(os.environ)
    env.setdefault("FND_SCORE_THREADS", str(max(1, available_cpus() // args.tasks)))
    env.setdefault("FND_SCORE_PROGRESS", "log")
    processes = []
    for index in range(args.tasks):
        task_env = {
            **env,
            "CLOUD_RUN_TASK_INDEX": str(index),
            "CLOUD_RUN_TASK_COUNT": str(args.tasks),
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "score_job", *job_args],
                env=task_env,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    summaries: list[dict[str, Any]] = []
    codes = []
    for process in processes:
        out, _ = process.communicate()
        codes.append(process.returncode)
        for line in out.splitlines():
            if line.startswith("{"):
                summaries.append(json.loads(line))
    totals = {
        key: sum(s[key] for s in summaries)
        for key in ("rows_in", "rows_scored", "rows_rejected", "rows_loaded")
    }
    totals["unreadable_files"] = sum(len(s["unreadable_files"]) for s in summaries)
    totals["tasks_ok"] = sum(1 for c in codes if c == 0)
    totals["tasks"] = args.tasks
    print(json.dumps(totals))
    return max(codes, key=abs)


if __name__ == "__main__":
    sys.exit(main())
