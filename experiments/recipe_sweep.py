"""Compare training recipes by their validation score over seeds, then run the best ones whole.

Made for a lent GPU, where a full-profile run takes about a minute and several share the card,
but it runs anywhere the train job does. Two phases, both the job itself (`python -m train_job`):

1. every variant x seed trains with --no-export; its final model's validation macro-F1 (the
   epoch average when that was kept, else the best epoch) comes from the job's results file;
2. the --finalists variants with the best validation median (variants with a missing seed are
   out; ties keep the earlier one), plus every --always variant, run again whole: export, gate,
   publish, trust report, each writing its results file.

Nothing here reads a test score to choose. The test scores of phase 2 are for the report
(experiments/seed_summary.py adds the behavioural tests per bundle).

    python -m experiments.recipe_sweep --out /tmp/sweep --seeds 42,43,44 --parallel 8 \\
        --variant current= --variant handles0.1="--handle-augmentation 0.1" \\
        --always current -- --profile full --base-model /tmp/minilm
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Job:
    variant: str
    seed: int
    argv: list[str]
    results: Path
    log: Path


def final_val_macro_f1(results: dict[str, Any]) -> float:
    """The validation macro-F1 of the model the run hands on: the weight average if kept."""
    train = results["train"]
    averaged = train.get("averaged") or {}
    if averaged.get("kept"):
        return float(averaged["val_macro_f1"])
    return float(train["best_val_macro_f1"])


def rank_variants(
    scores: dict[str, dict[int, float]], seeds: list[int], order: list[str]
) -> list[tuple[str, float]]:
    """Variants with a score for every seed, by validation median, best first; ties keep the
    order given (so the current recipe wins a tie when it is listed first)."""
    complete = [v for v in order if all(s in scores.get(v, {}) for s in seeds)]
    medians = {v: statistics.median(scores[v][s] for s in seeds) for v in complete}
    return sorted(((v, medians[v]) for v in complete), key=lambda item: -item[1])


def run_jobs(jobs: list[Job], parallel: int, deadline: float, env: dict[str, str]) -> None:
    """Run the jobs, `parallel` at a time; none starts after the deadline, and those still
    running at the deadline are stopped (their results file is then missing)."""
    waiting, running = list(jobs), []
    while waiting or running:
        while waiting and len(running) < parallel and time.time() < deadline:
            job = waiting.pop(0)
            job.log.parent.mkdir(parents=True, exist_ok=True)
            with job.log.open("w") as log:
                running.append(
                    (job, subprocess.Popen(job.argv, cwd=ROOT, env=env, stdout=log, stderr=log))
                )
            print(f"started {job.variant} seed {job.seed}", flush=True)
        if time.time() >= deadline:
            waiting.clear()
            for job, proc in running:
                proc.kill()
                print(f"stopped at the deadline: {job.variant} seed {job.seed}", flush=True)
            for _, proc in running:
                proc.wait()
            return
        for job, proc in list(running):
            if proc.poll() is not None:
                running.remove((job, proc))
                print(f"done {job.variant} seed {job.seed}: exit {proc.returncode}", flush=True)
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="results, logs, sweep.json")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="a recipe: name and the job flags it adds (repeat; the first is the reference)",
    )
    parser.add_argument("--finalists", type=int, default=1, help="best variants run whole")
    parser.add_argument("--always", action="append", default=[], help="also run this one whole")
    parser.add_argument("--parallel", type=int, default=4, help="jobs at a time")
    parser.add_argument("--sweep-minutes", type=float, default=60.0, help="phase 1 deadline")
    parser.add_argument("--final-minutes", type=float, default=60.0, help="phase 2 deadline")
    parser.add_argument("job_flags", nargs=argparse.REMAINDER, help="-- then flags for every run")
    args = parser.parse_args(argv)

    seeds = [int(s) for s in args.seeds.split(",")]
    variants: dict[str, list[str]] = {}
    for spec in args.variant:
        name, _, flags = spec.partition("=")
        variants[name] = shlex.split(flags)
    unknown = [v for v in args.always if v not in variants]
    if not variants or unknown:
        parser.error(f"give --variant NAME=FLAGS; unknown --always: {unknown}")
    common = [f for f in args.job_flags if f != "--"]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 2) // args.parallel)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}

    def job(variant: str, seed: int, phase: str, extra: list[str]) -> Job:
        stem = f"{phase}_{variant}_seed{seed}"
        results = out / f"{stem}.json"
        argv_ = [sys.executable, "-m", "train_job", *common, *variants[variant], *extra]
        argv_ += ["--seed", str(seed), "--results-file", str(results), "--log-every", "1000"]
        return Job(variant, seed, argv_, results, out / "logs" / f"{stem}.log")

    started = time.time()
    sweep = [job(v, s, "sweep", ["--no-export"]) for v in variants for s in seeds]
    run_jobs(sweep, args.parallel, started + args.sweep_minutes * 60, env)
    scores: dict[str, dict[int, float]] = {}
    for j in sweep:
        if j.results.is_file():
            scores.setdefault(j.variant, {})[j.seed] = final_val_macro_f1(
                json.loads(j.results.read_text())
            )
    ranking = rank_variants(scores, seeds, list(variants))
    chosen = [v for v, _ in ranking[: args.finalists]]
    finalists = chosen + [v for v in args.always if v not in chosen]
    print(f"validation medians: {ranking}; run whole: {finalists}", flush=True)

    final = [job(v, s, "final", []) for v in finalists for s in seeds]
    final_started = time.time()
    run_jobs(final, args.parallel, final_started + args.final_minutes * 60, env)
    record = {
        "command": " ".join(["python", "-m", "experiments.recipe_sweep", *(argv or sys.argv[1:])]),
        "seeds": seeds,
        "variants": {v: " ".join(f) for v, f in variants.items()},
        "val_macro_f1": {v: {str(s): x for s, x in by.items()} for v, by in scores.items()},
        "ranking": ranking,
        "chosen_on_validation": chosen,
        "run_whole": finalists,
        "final_results": [str(j.results) for j in final if j.results.is_file()],
        "minutes": {
            "sweep": round((final_started - started) / 60, 2),
            "final": round((time.time() - final_started) / 60, 2),
        },
    }
    (out / "sweep.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0 if record["final_results"] else 1


if __name__ == "__main__":
    sys.exit(main())
