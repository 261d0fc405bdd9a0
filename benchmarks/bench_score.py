"""Batch scoring throughput: the scoring job next to raw onnxruntime on the same bundle and texts.

    python -m benchmarks.bench_score [--store local/store] [--rows 100000] [--compare-rows 20000]
    (make bench-score) writes reports/bench_score.json and reports/bench_score.md.

1. Same texts, same run: `compare_rows` synthetic posts scored (a) by raw onnxruntime, the
   bundle's session fed pre-tokenized, pre-padded batches (only `session.run` timed), and (b) by
   one task of the job, in process, end to end: listing, counting, bundle check, model load,
   reading, tokenizing, scoring, writing the shard and loading it into a DuckDB table. Both use
   the same thread count and the same length-sorted batches; each is run twice, alternately, and
   the faster run of each counts. Target: job >= 90% of raw.
2. `rows` synthetic posts scored end to end by `python -m score_job.local` with `tasks` local
   task processes (what `make score` runs), and the table checked to hold one row per scored row.

The synthetic posts recombine the CONSTRAINT posts (train, validation and test), so their lengths
are those of real posts; a few empty and over-long ones exercise the rejects.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import processor
from score_job.config import ScoreConfig
from score_job.job import available_cpus, run
from serving_core.bundle import fetch_bundle
from serving_core.model import ATTENTION_MASK, INPUT_IDS, TOKEN_TYPE_IDS, Model, plan_batches
from testing.paths import ROOT

DATA = ROOT / "data" / "constraint-covid19-fakenews"
TARGET_RATIO = 0.90


def synthetic_posts(rows: int, seed: int = 0, rejects: int = 0) -> list[str]:
    """`rows` posts: real CONSTRAINT posts, a third of them with a sentence of another appended;
    `rejects` of them empty or over-long (half each)."""
    posts: list[str] = []
    for name in ("Constraint_Train.csv", "Constraint_Val.csv", "english_test_with_labels.csv"):
        with (DATA / name).open(encoding="utf-8", newline="") as handle:
            posts += [r["tweet"] for r in csv.DictReader(handle) if r["tweet"].strip()]
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        text = rng.choice(posts)
        if rng.random() < 1 / 3:
            text = f"{text} {rng.choice(posts).split('. ')[0]}"
        out.append(text)
    for i in rng.sample(range(rows), min(rejects, rows)):
        out[i] = "" if i % 2 else "x" * 30000
    return out


def write_csv(texts: list[str], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([i, t] for i, t in enumerate(texts))
    return path


def raw_onnxruntime(model: Model, texts: list[str], chunk_rows: int) -> float:
    """Seconds of session.run over the texts, batched as the job batches them."""
    feeds = []
    for lo in range(0, len(texts), chunk_rows):
        encoded = model.encode(texts[lo : lo + chunk_rows])
        lengths = [len(e.ids) for e in encoded]
        for indices in plan_batches(lengths, model.max_batch_size, model.max_batch_tokens):
            batch = [encoded[i] for i in indices]
            width = max(len(e.ids) for e in batch)
            ids = np.full((len(batch), width), model.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, enc in enumerate(batch):
                ids[row, : len(enc.ids)] = enc.ids
                mask[row, : len(enc.ids)] = 1
            available = {INPUT_IDS: ids, ATTENTION_MASK: mask, TOKEN_TYPE_IDS: np.zeros_like(ids)}
            feeds.append({name: available[name] for name in model.input_names})
    started = time.perf_counter()
    for feed in feeds:
        model.session.run(model.output_names, feed)
    return time.perf_counter() - started


def job_in_process(
    store: Path, csv_path: Path, work: Path, threads: int, tag: str
) -> tuple[float, dict[str, Any]]:
    cfg = ScoreConfig(
        input=str(csv_path),
        text_columns="text",
        id_column="id",
        store=str(store),
        output=str(work / f"out-{tag}"),
        table=f"duckdb://{work / f'scores-{tag}.duckdb'}",
        bundle_cache_dir=str(work / "cache"),
        task_index=0,
        task_count=1,
        threads=threads,
        progress="off",
    )
    started = time.perf_counter()
    summary = run(cfg)
    return time.perf_counter() - started, json.loads(summary.as_json())


def local_tasks(store: Path, csv_path: Path, work: Path, tasks: int) -> dict[str, Any]:
    table = work / "scores-local.duckdb"
    command = [
        sys.executable, "-m", "score_job.local", "--tasks", str(tasks), "--",
        "--input", str(csv_path), "--text-columns", "text", "--id-column", "id",
        "--store", str(store), "--output", str(work / "out-local"),
        "--table", f"duckdb://{table}", "--bundle-cache-dir", str(work / "cache"),
    ]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"score_job.local failed:\n{result.stderr[-3000:]}")
    totals = json.loads(result.stdout.strip().splitlines()[-1])
    import duckdb

    con = duckdb.connect(str(table), read_only=True)
    rows, keys = con.execute("SELECT COUNT(*), COUNT(DISTINCT row_key) FROM scores").fetchone()
    con.close()
    return {
        "tasks": tasks,
        "seconds": round(seconds, 2),
        "rows_per_second": round(totals["rows_in"] / seconds, 1),
        **totals,
        "table_rows": rows,
        "table_distinct_keys": keys,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=ROOT / "local" / "store")
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic posts, end to end")
    parser.add_argument("--compare-rows", type=int, default=20_000, help="posts for job vs raw")
    parser.add_argument("--tasks", type=int, default=4, help="local task processes")
    parser.add_argument("--threads", type=int, default=0, help="0 = this machine's CPUs")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_score")
    args = parser.parse_args(argv)
    threads = args.threads or available_cpus()
    load_start = [round(x, 2) for x in os.getloadavg()]

    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        work = Path(tmp)
        texts = synthetic_posts(args.compare_rows, seed=1)
        csv_path = write_csv(texts, work / "compare.csv")
        bundle = fetch_bundle(str(args.store / "models" / "production.json"), work / "cache")
        defaults = ScoreConfig()
        model = Model.load(bundle, threads, defaults.max_batch_size, defaults.max_batch_tokens)
        raw_runs, job_runs, job_summary = [], [], {}
        for attempt in range(2):
            raw_runs.append(raw_onnxruntime(model, texts, defaults.chunk_rows))
            seconds, job_summary = job_in_process(args.store, csv_path, work, threads, str(attempt))
            job_runs.append((seconds, job_summary["scoring_seconds"]))
        raw_rate = len(texts) / min(raw_runs)
        job_rate = len(texts) / min(s for s, _ in job_runs)
        loop_rate = len(texts) / min(s for _, s in job_runs)
        compare = {
            "posts": len(texts),
            "threads": threads,
            "version": bundle.version,
            "raw_onnxruntime_posts_per_s": round(raw_rate, 1),
            "job_end_to_end_posts_per_s": round(job_rate, 1),
            "job_scoring_loop_posts_per_s": round(loop_rate, 1),
            "ratio_end_to_end": round(job_rate / raw_rate, 3),
            "ratio_scoring_loop": round(loop_rate / raw_rate, 3),
            "raw_seconds": [round(s, 2) for s in raw_runs],
            "job_seconds": [round(s, 2) for s, _ in job_runs],
        }
        big = write_csv(synthetic_posts(args.rows, seed=2, rejects=20), work / "synthetic.csv")
        end_to_end = local_tasks(args.store, big, work, args.tasks)

    load_end = [round(x, 2) for x in os.getloadavg()]
    cpus = os.cpu_count() or 1
    loaded = max(load_start[0], load_end[0]) > 0.5 * cpus
    report = {
        "command": "make bench-score",
        "machine": {
            "cpus": cpus,
            "platform": platform.machine(),
            "processor": processor(),
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "measured_under_load": loaded,
        },
        "compare": compare,
        "end_to_end": end_to_end,
        "targets": {
            "ratio_end_to_end": {
                "measured": compare["ratio_end_to_end"],
                "target": TARGET_RATIO,
                "met": compare["ratio_end_to_end"] >= TARGET_RATIO,
            },
            "one_row_per_scored_row": {
                "measured": end_to_end["table_rows"],
                "target": end_to_end["rows_scored"],
                "met": end_to_end["table_rows"]
                == end_to_end["table_distinct_keys"]
                == end_to_end["rows_scored"],
            },
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


def markdown(report: dict[str, Any]) -> str:
    m, c, e = report["machine"], report["compare"], report["end_to_end"]
    lines = [
        "# Batch scoring benchmark (`make bench-score`)",
        "",
        f"Machine: {m['cpus']} CPUs, {m.get('processor', m['platform'])}; "
        f"load average {m['loadavg_start']} at start, "
        f"{m['loadavg_end']} at end. Bundle {c['version']}, {c['threads']} onnxruntime thread(s).",
    ]
    if m["measured_under_load"]:
        lines += [
            "",
            "**Measured on a loaded machine** (load average above half the CPUs): other work "
            "took CPU time from both sides, so the absolute numbers are low and the ratio noisy.",
        ]
    lines += [
        "",
        "## Targets",
        "",
        "| what | measured | target | met |",
        "|---|---|---|---|",
        *(
            f"| {name} | {t['measured']} | {t['target']} | {t['met']} |"
            for name, t in report["targets"].items()
        ),
        "",
        f"## Job vs raw onnxruntime, same {c['posts']} posts, same run",
        "",
        "| path | posts/s | ratio to raw |",
        "|---|---|---|",
        f"| raw onnxruntime (session.run only, pre-tokenized) | {c['raw_onnxruntime_posts_per_s']} "
        "| 1.0 |",
        f"| job, end to end (one task, in process) | {c['job_end_to_end_posts_per_s']} "
        f"| {c['ratio_end_to_end']} |",
        f"| job, scoring loop (read, tokenize, score, write) | {c['job_scoring_loop_posts_per_s']}"
        f" | {c['ratio_scoring_loop']} |",
        "",
        f"Seconds per run: raw {c['raw_seconds']}, job {c['job_seconds']} (the faster of each "
        "counts).",
        "",
        f"## {e['rows_in']} synthetic posts, {e['tasks']} local task processes (`make score`)",
        "",
        f"{e['seconds']} s, {e['rows_per_second']} posts/s end to end; {e['rows_scored']} scored, "
        f"{e['rows_rejected']} rejected, {e['table_rows']} rows in the table "
        f"({e['table_distinct_keys']} distinct keys).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
