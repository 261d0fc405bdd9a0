"""The product function next to a one-file reference function, in one run, on the same bundle,
the same official-test posts (one per request), the same client and the same machine:

1. HTTP through functions-framework on 127.0.0.1: p50/p99 at concurrency 1, throughput (and p99)
   at concurrency 16, closed loop, keep-alive; rounds alternate between the servers so a change
   in the machine's load hits all of them alike. The client is benchmarks/loadgen.py (one asyncio
   thread); its own CPU time is reported.
2. Servers, each in the deployed function's environment (its source zip unpacked, a venv with
   only the zip's requirements.txt, built once under build/bench-function/): the reference
   (benchmarks/reference_function.py), the product in its default
   configuration with the embedded DuckDB log, the product with production's stdout log (one JSON
   line per row, routed into BigQuery by a Logging sink), the product logging to BigQuery
   (bqemulator), and the product with PREDICTION_LOG=none, the baseline of what logging costs.
   Beside them the floor (benchmarks/floor_function.py): functions-framework with the model's
   libraries imported and no model, what the framework, server and client cost any function.
3. Cold start: process start to first answer, the median of several fresh starts per server
   taken in turns, and phase by phase in fresh processes (benchmarks/cold_start.py): import,
   bundle fetch + verification, onnxruntime and tokenizers import, session, first run; and the
   least first answer any function serving the bundle can reach here (the floor's first answer
   plus the reference's session and first run).
4. PSS of each server's process tree after the load; the product's refusals of a 20 MB body and
   of 20,000 instances (the reference accepts both, so it is not sent them).
5. In-process p50 of tokenize + run (the reference's code path) and of the product's
   Model.predict, one onnxruntime thread as both servers use, on the same posts.
6. Dollars per million predictions at Cloud Run's list prices, from the throughput at
   concurrency 16 and the memory setting that holds each server (cost_per_million).

    python -m benchmarks.bench_serve_compare [--quick] [--no-bq] [--against REF] [--store S]
    (make bench-serve-compare [BENCH_FLAGS="--against REF"])

--against REF adds the product as it was at commit REF (its source zip built from that commit,
run on today's venv) with the DuckDB and the stdout log, loaded in the same alternating rounds:
whether a change made serving slower, measured side by side instead of across runs whose
spread on this machine is as large as the effect.
--store S serves the bundle promoted in another store (a larger served profile, for one).
writes reports/bench_serve_compare.json and reports/bench_serve_compare.md (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from benchmarks.loadgen import official_test_posts, percentile, run_load, text_bodies
from benchmarks.report import processor, write_report
from testing.bigquery_emulator import BigQueryEmulator
from testing.function_server import (
    DeployedFunction,
    ServedFunction,
    deployed_function,
    function_config_value,
    launch_function,
)
from testing.paths import FUNCTION_DIR, ROOT
from testing.processes import pss_mib, stop_process

REFERENCE_SOURCE = ROOT / "benchmarks" / "reference_function.py"
FLOOR_SOURCE = ROOT / "benchmarks" / "floor_function.py"
# The servers run as deployed by default: functions-framework's and the function's own settings.
SERVER_SETTINGS = ("THREADS", "WORKERS", "ORT_INTRA_OP_THREADS", "PREDICTION_LOG")
BQ_PROJECT, BQ_DATASET = "test-project", "bench"
NO_LOG = "product, no log"
FLOOR = "floor: functions-framework, no model"


# Cloud Run list prices (tier-1 regions, request-based billing), what Cloud Run functions bill;
# https://cloud.google.com/run/pricing, the free tier left out.
PRICE_VCPU_SECOND = 0.000024
PRICE_GIB_SECOND = 0.0000025
PRICE_MILLION_REQUESTS = 0.40
MEMORY_SETTINGS_GIB = (0.5, 1.0, 2.0, 4.0, 8.0)
MEMORY_HEADROOM = 1.5  # an instance's memory over the server's measured PSS


def memory_setting_gib(pss_mib: float) -> float:
    """The least memory setting that holds a server's PSS with headroom."""
    need = pss_mib * MEMORY_HEADROOM / 1024
    return next((gib for gib in MEMORY_SETTINGS_GIB if gib >= need), MEMORY_SETTINGS_GIB[-1])


def cost_per_million(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Dollars per million predictions: an instance with this machine's vCPUs and the server's
    memory setting, busy for a million requests at the throughput measured at concurrency 16,
    plus the request fee. A floor: idle instances and cold starts are not counted."""
    vcpus = report["machine"]["cpus"]
    costs = {}
    for name, row in report["servers"].items():
        if name == FLOOR:
            continue
        memory = memory_setting_gib(row["pss_mib"])
        busy_s = 1e6 / row["c16"]["throughput_rps"]
        compute = busy_s * (vcpus * PRICE_VCPU_SECOND + memory * PRICE_GIB_SECOND)
        costs[name] = {
            "memory_gib": memory,
            "instance_hours": round(busy_s / 3600, 2),
            "dollars": round(compute + PRICE_MILLION_REQUESTS, 2),
        }
    return costs


@dataclass
class Scale:
    rounds: int
    c1_requests: int
    c16_requests: int
    cold_runs: int
    in_process_posts: int
    first_answer_runs: int

    @classmethod
    def of(cls, quick: bool) -> Scale:
        return cls(1, 100, 240, 1, 100, 1) if quick else cls(3, 400, 1600, 3, 400, 7)


@dataclass
class Server:
    name: str
    env: dict[str, str]
    source: Path = FUNCTION_DIR / "main.py"
    python: Path = Path(sys.executable)
    product: bool = True
    function: ServedFunction | None = None
    first_answers_s: list[float] = field(default_factory=list)
    answered: int = 0
    loads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


# ---- servers ------------------------------------------------------------------------------------


def first_answer(function: ServedFunction, body: bytes, timeout_s: float = 120) -> float:
    """Seconds from the process start to its first 200 prediction."""
    deadline = time.perf_counter() + timeout_s
    headers = {"Content-Type": "application/json"}
    while time.perf_counter() < deadline:
        if function.process.poll() is not None:
            raise RuntimeError(function.log())
        try:
            response = requests.post(function.url, data=body, headers=headers, timeout=60)
        except requests.ConnectionError:
            time.sleep(0.005)
            continue
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text}\n{function.log()}")
        return round(time.perf_counter() - function.started_at, 3)
    raise TimeoutError(function.log())


def servers_for(
    store: Path,
    version: str,
    tmp: Path,
    bq: BigQueryEmulator | None,
    deployed: DeployedFunction,
    earlier: dict[str, DeployedFunction] | None = None,
) -> list[Server]:
    """Every server runs in the deployed function's environment; the product from its zip (and
    from the zips of `earlier` commits, by name)."""
    pointer = str(store / "models" / "production.json")
    product_env = {"MODEL_URI": pointer, "DEAD_LETTER_URI": str(tmp / "dead-letter")}
    main, python = deployed.source / "main.py", deployed.python
    servers = [
        Server(
            "reference",
            {"REFERENCE_BUNDLE_DIR": str(store / "models" / version)},
            source=REFERENCE_SOURCE,
            python=python,
            product=False,
        ),
        Server(
            "product, DuckDB log",
            {**product_env, "PREDICTION_LOG": f"duckdb://{tmp / 'predictions.duckdb'}"},
            main,
            python,
        ),
        Server(
            "product, stdout log (production's sink)",
            {**product_env, "PREDICTION_LOG": "stdout"},
            main,
            python,
        ),
        Server(NO_LOG, {**product_env, "PREDICTION_LOG": "none"}, main, python),
        Server(FLOOR, {}, source=FLOOR_SOURCE, python=python, product=False),
    ]
    if bq is not None:
        table = f"bq://{BQ_PROJECT}.{BQ_DATASET}.predictions"
        env = {**product_env, "PREDICTION_LOG": table, "BIGQUERY_EMULATOR_HOST": bq.host}
        servers.append(Server("product, BigQuery log (emulator)", env, main, python))
    for ref, function in (earlier or {}).items():
        for log, uri in (
            ("DuckDB", f"duckdb://{tmp / f'predictions-{ref}.duckdb'}"),
            ("stdout", "stdout"),
        ):
            env = {**product_env, "PREDICTION_LOG": uri}
            servers.append(
                Server(f"product at {ref}, {log} log", env, function.source / "main.py", python)
            )
    return servers


def deployed_at(ref: str, deployed: DeployedFunction) -> tuple[str, DeployedFunction]:
    """The function's source zip as commit `ref` builds it, unpacked beside today's and run on
    today's venv: the code of `ref`, the libraries of today."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short=7", f"{ref}^{{commit}}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    build = deployed.source.parent / f"at-{sha}"
    shutil.rmtree(build, ignore_errors=True)
    checkout = build / "checkout"
    subprocess.run(["git", "worktree", "add", "--detach", str(checkout), sha], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    try:
        # `python -c` from the checkout imports that commit's tools/build_function_zip.py.
        code = "import sys, pathlib; from tools.build_function_zip import build_zip; "
        code += "build_zip(pathlib.Path(sys.argv[1]))"
        subprocess.run([sys.executable, "-c", code, str(build / "function.zip")], cwd=checkout,
                       check=True)  # fmt: skip
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT,
                       check=False)  # fmt: skip
    zipfile.ZipFile(build / "function.zip").extractall(build / "source")
    subprocess.run([str(deployed.python), "-m", "compileall", "-f", "-q", str(build / "source")],
                   check=True)  # fmt: skip
    return sha, DeployedFunction(source=build / "source", python=deployed.python)


def slug_of(server: Server) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", server.name).strip("-")


def start(server: Server, tmp: Path, body: bytes) -> None:
    """A fresh process (its own empty bundle cache) and its first answer's time."""
    slug = slug_of(server)
    run = len(server.first_answers_s)
    log_path = tmp / f"{slug}-{run}.log"
    env = {"BUNDLE_CACHE_DIR": str(tmp / f"{slug}-cache-{run}"), **server.env}
    server.function = launch_function(env, log_path, source=server.source, python=server.python)
    server.first_answers_s.append(first_answer(server.function, body))
    server.answered += 1


def stop_all(servers: list[Server]) -> None:
    for server in servers:
        if server.function is not None:
            stop_process(server.function.process)


def start_all(servers: list[Server], tmp: Path, body: bytes, runs: int) -> None:
    """`runs` cold starts per server, taken in turns so a change in the machine's load hits all
    of them alike; the last process of each stays up for the load."""
    for run in range(runs):
        for server in servers:
            start(server, tmp, body)
            if run < runs - 1:
                assert server.function is not None
                stop_process(server.function.process)  # SIGTERM: the logger flushes


@contextmanager
def bigquery(tmp: Path) -> Iterator[BigQueryEmulator]:
    from monitoring._engines import BigQueryEngine

    emulator = BigQueryEmulator(tmp / "bqemulator", nice=19)
    emulator.start()
    try:
        os.environ["BIGQUERY_EMULATOR_HOST"] = emulator.host
        BigQueryEngine(BQ_PROJECT, BQ_DATASET).create_tables()
        yield emulator
    finally:
        os.environ.pop("BIGQUERY_EMULATOR_HOST", None)
        emulator.stop()


# ---- measurements -------------------------------------------------------------------------------


def load_rounds(servers: list[Server], bodies: list[bytes], scale: Scale) -> None:
    """Warm-up, then rounds of c=1 and c=16 per server, the servers' order rotating by round."""
    for server in servers:
        assert server.function is not None
        server.answered += run_load(server.function.url, bodies[:20], 1, 20).statuses.get(200, 0)
    for round_index in range(scale.rounds):
        shift = round_index % len(servers)
        for server in servers[shift:] + servers[:shift]:
            assert server.function is not None
            for name, concurrency, total in (
                ("c1", 1, scale.c1_requests),
                ("c16", 16, scale.c16_requests),
            ):
                start_at = (round_index * total) % len(bodies)
                result = run_load(server.function.url, bodies[start_at:], concurrency, total)
                server.answered += result.statuses.get(200, 0)
                summary = result.summary()
                summary["latencies_ms"] = result.latencies_ms
                server.loads.setdefault(name, []).append(summary)


def merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure per load level over the rounds: pooled percentiles, summed counts."""
    latencies = sorted(ms for run in runs for ms in run["latencies_ms"])
    wall = sum(run["requests"] / run["throughput_rps"] for run in runs if run["throughput_rps"])
    ok = sum(run["ok"] for run in runs)
    cpu = sum(run["client_cpu_s"] for run in runs)
    return {
        "requests": sum(run["requests"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
        "throughput_rps": round(ok / wall, 1) if wall else None,
        "throughput_rps_by_round": [run["throughput_rps"] for run in runs],
        "p50_ms": round(percentile(latencies, 0.50), 3) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 3) if latencies else None,
        "client_cpu_per_request_us": round(1e6 * cpu / max(ok, 1)),
        "client_core_share": round(cpu / wall, 4) if wall else None,
    }


def refusals(url: str) -> dict[str, Any]:
    """Status codes of a 20 MB body and of 20,000 instances (both must be 413)."""
    headers = {"Content-Type": "application/json"}
    big = b'{"text": "' + b"a" * (20 * 1024 * 1024) + b'"}'
    many = json.dumps({"instances": [{"text": "x"}] * 20_000}).encode()
    out: dict[str, Any] = {}
    for name, body in (("body_20mb", big), ("instances_20000", many)):
        try:
            out[name] = requests.post(url, data=body, headers=headers, timeout=120).status_code
        except requests.ConnectionError as exc:  # the server may close while we still send
            out[name] = f"connection closed ({type(exc).__name__})"
    out["refused"] = out["instances_20000"] == 413 and out["body_20mb"] in (
        413,
        "connection closed (ConnectionError)",
    )
    return out


def rows_logged(server: Server, tmp: Path) -> int | None:
    """Rows in the server's prediction log (read after it stopped and flushed)."""
    sink = server.env.get("PREDICTION_LOG", "")
    if sink.startswith("duckdb://"):  # the spooled lines are loaded into the table first
        from prediction_log.line_spool import connect_and_load, duckdb_path

        with connect_and_load(duckdb_path(sink), lock_wait_s=30) as con:
            return int(con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
    if sink == "stdout":  # the lines Cloud Logging would route into BigQuery
        logs = tmp.glob(f"{slug_of(server)}-[0-9]*.log")
        return sum(log.read_text().count('"message":"prediction_log_row"') for log in logs)
    if sink.startswith("bq://"):
        from monitoring._engines import BigQueryEngine

        engine = BigQueryEngine(BQ_PROJECT, BQ_DATASET)
        table = sink.removeprefix("bq://")
        return int(engine.query(f"SELECT COUNT(*) AS n FROM `{table}`")[0]["n"])
    return None


def cold_phases(
    kind: str, env: dict[str, str], runs: int, deployed: DeployedFunction
) -> dict[str, Any]:
    """Median of each cold-start phase over `runs` fresh processes (benchmarks/cold_start.py),
    in the deployed function's environment with its unpacked zip on the path, as
    functions-framework puts it (the repository root is there as python -m puts it)."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(deployed.source)}
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        full_env["COLD_START_SPAWNED_AT"] = repr(time.time())
        done = subprocess.run(
            [str(deployed.python), "-m", "benchmarks.cold_start", kind],
            cwd=ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: round(statistics.median(s[key] for s in samples), 4) for key in samples[0]}


def in_process(bundle_dir: Path, posts: list[str], threads: int) -> dict[str, Any]:
    """p50 per post, one text per call: the reference's tokenize + run + softmax, and the
    product's Model.predict (validation-free; calibration and out-of-domain score included), on
    `threads` onnxruntime threads as both servers use under concurrency; then both again on the
    solo session's settings (the function's SOLO_ORT_THREADS), which answer a request alone in
    flight, as at concurrency 1."""
    os.environ["REFERENCE_BUNDLE_DIR"] = str(bundle_dir)
    from benchmarks import reference_function
    from serving_core.bundle import fetch_bundle
    from serving_core.model import Model

    solo_threads = function_config_value("ServeConfig.from_env({}).solo_ort_threads")
    model = Model.load(
        fetch_bundle(str(bundle_dir), Path(tempfile.gettempdir())),
        intra_op_threads=threads,
        max_batch_size=32,
        max_batch_tokens=1024,
        solo_threads=solo_threads,
    )
    if solo_threads > threads and not model.wait_for_solo_session(timeout_s=60):
        raise RuntimeError("the solo session did not open")
    calls = {
        "tokenize_run_ms": lambda text: reference_function.predict_texts([text]),
        "product_model_predict_ms": lambda text: model.predict([text]),
    }
    if model.solo_session is not None:
        # The reference's own code path (tokenize, run, softmax) on the solo session.
        solo = model.solo_session
        calls["tokenize_run_solo_ms"] = lambda text: reference_function.predict_texts(
            [text], session=solo
        )
        calls["product_model_predict_solo_ms"] = lambda text: model.predict([text], solo=True)
    for text in posts[:10]:
        for call in calls.values():
            call(text)
    ms: dict[str, list[float]] = {name: [] for name in calls}
    for text in posts:  # alternating per post, so a change in the machine's load hits both
        for name, call in calls.items():
            started = time.perf_counter()
            call(text)
            ms[name].append((time.perf_counter() - started) * 1000)
    out: dict[str, Any] = {
        "onnxruntime_threads": threads,
        "solo_onnxruntime_threads": solo_threads if model.solo_session is not None else None,
        "posts": len(posts),
    }
    for name, values in ms.items():
        ordered = sorted(values)
        out[name] = {
            "p50": round(percentile(ordered, 0.5), 3),
            "p99": round(percentile(ordered, 0.99), 3),
        }
    return out


def run_servers(
    store: Path,
    version: str,
    bodies: list[bytes],
    scale: Scale,
    use_bq: bool,
    deployed: DeployedFunction,
    earlier: dict[str, DeployedFunction] | None = None,
) -> dict[str, Any]:
    """Start every server (one after the other, so each cold start has the machine), load them
    in alternating rounds, then read memory, refusals and the rows each one logged."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        bq = stack.enter_context(bigquery(tmp)) if use_bq else None
        servers = servers_for(store, version, tmp, bq, deployed, earlier)
        stack.callback(stop_all, servers)
        start_all(servers, tmp, bodies[0], scale.first_answer_runs)
        emulator_cpu = bq.cpu_seconds() if bq is not None else 0.0
        load_rounds(servers, bodies, scale)
        emulator_cpu = bq.cpu_seconds() - emulator_cpu if bq is not None else 0.0
        for server in servers:
            assert server.function is not None
            row: dict[str, Any] = {
                "first_answer_s": statistics.median(server.first_answers_s),
                "first_answers_s": server.first_answers_s,
                "c1": merged(server.loads["c1"]),
                "c16": merged(server.loads["c16"]),
                "pss_mib": pss_mib(server.function.process.pid),
            }
            if server.product:
                row["refusals"] = refusals(server.function.url)
            if server.env.get("PREDICTION_LOG", "").startswith("bq://"):
                row["emulator_cpu_s_during_load"] = round(emulator_cpu, 2)
            out[server.name] = row
        for server in servers:
            assert server.function is not None
            stop_process(server.function.process)  # SIGTERM: the logger flushes
            if server.product:
                out[server.name]["rows_logged"] = rows_logged(server, tmp)
                out[server.name]["answered"] = server.answered
    return out


def log_cost(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """What the log path costs: each logging product row against the same function with
    PREDICTION_LOG=none (latency and throughput as ratios, memory as a difference)."""
    servers = report["servers"]
    base = servers[NO_LOG]
    out = {}
    for name, row in servers.items():
        if name in ("reference", NO_LOG, FLOOR):
            continue
        out[name] = {
            "p50_c1": round(row["c1"]["p50_ms"] / base["c1"]["p50_ms"], 3),
            "p99_c1": round(row["c1"]["p99_ms"] / base["c1"]["p99_ms"], 3),
            "throughput_c16": round(
                row["c16"]["throughput_rps"] / base["c16"]["throughput_rps"], 3
            ),
            "pss_mib_more": round(row["pss_mib"] - base["pss_mib"], 1),
        }
    return out


def ratios(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """product / reference for each figure (for throughput above 1 means the product is faster;
    for the others below 1 does)."""
    servers = report["servers"]
    reference = servers["reference"]
    figures = {
        "p50_c1": lambda r: r["c1"]["p50_ms"],
        "p99_c1": lambda r: r["c1"]["p99_ms"],
        "throughput_c16": lambda r: r["c16"]["throughput_rps"],
        "first_answer": lambda r: r["first_answer_s"],
        "pss": lambda r: r["pss_mib"],
    }
    out = {}
    for name, row in servers.items():
        if name in ("reference", FLOOR):
            continue
        out[name] = {
            figure: round(get(row) / get(reference), 2) if get(row) and get(reference) else None
            for figure, get in figures.items()
        }
    return out


def against(report: dict[str, Any], refs: list[str]) -> dict[str, dict[str, float | None]]:
    """Today's product rows / the same rows at each earlier commit (below 1: today is faster;
    throughput: above 1)."""
    servers, out = report["servers"], {}
    figures = {
        "p50_c1": lambda r: r["c1"]["p50_ms"],
        "p99_c1": lambda r: r["c1"]["p99_ms"],
        "throughput_c16": lambda r: r["c16"]["throughput_rps"],
        "p99_c16": lambda r: r["c16"]["p99_ms"],
    }
    for ref in refs:
        for log in ("DuckDB", "stdout"):
            today = servers[next(n for n in servers if n.startswith(f"product, {log} log"))]
            then = servers[f"product at {ref}, {log} log"]
            out[f"{log} log: today / {ref}"] = {
                figure: round(get(today) / get(then), 2) if get(then) else None
                for figure, get in figures.items()
            }
    return out


# ---- report -------------------------------------------------------------------------------------


def header_lines(report: dict[str, Any]) -> list[str]:
    machine = report["machine"]
    # Only the start says whether others were using the machine: by the end the bench's own
    # servers and client have raised the load average.
    busy = machine["loadavg_start"][0] >= 1.0
    refs = list(dict.fromkeys(name.rsplit(" / ", 1)[1] for name in report.get("against", {})))
    flags = " ".join(f"--against {ref}" for ref in refs)
    command = "make bench-serve-compare" + (f' BENCH_FLAGS="{flags}"' if flags else "")
    lines = [f"# Serving: product function vs a one-file reference (`{command}`)", ""]
    if report.get("note"):
        lines += [f"**{report['note']}**", ""]
    cpus = f"{machine['cpus']} CPUs" + (
        f", {machine['processor']}" if "processor" in machine else ""
    )
    load = f"load average {machine['loadavg_start']} at start, {cpus}"
    if busy:
        lines += [
            f"**Measured under load** ({load}): absolute numbers are inflated and noisy; read "
            "the ratios, and rerun on an idle machine.",
            "",
        ]
    else:
        lines += [f"Idle machine at start ({load}).", ""]
    lines += [
        f"Bundle {report['bundle_version']}; {report['posts']} official-test posts, one per "
        f"request; {report['scale']['rounds']} round(s) of {report['scale']['c1_requests']} "
        f"requests at concurrency 1 and {report['scale']['c16_requests']} at 16 per server, the "
        "servers' order rotating. Each server in its default settings under functions-framework "
        "(the reference gets functions-framework's THREADS default, the product its own), all in "
        "the deployed function's environment: the product from its source zip (`make "
        "function-zip`), every server on a venv holding only the zip's requirements.txt. Client: "
        "benchmarks/loadgen.py, one asyncio thread, keep-alive.",
        "",
    ]
    return lines


def server_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| server | p50 c=1 ms | p99 c=1 ms | req/s c=16 | p99 c=16 ms | errors "
        "| first answer s | PSS MiB | client CPU µs/req (c=1, c=16) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["servers"].items():
        c1, c16 = row["c1"], row["c16"]
        lines.append(
            f"| {name} | {c1['p50_ms']} | {c1['p99_ms']} | {c16['throughput_rps']} | "
            f"{c16['p99_ms']} | {c1['errors'] + c16['errors']} | {row['first_answer_s']} | "
            f"{row['pss_mib']} | {c1['client_cpu_per_request_us']}, "
            f"{c16['client_cpu_per_request_us']} |"
        )
    lines += [
        "",
        "Ratios, product / reference (throughput: above 1 is faster; others: below 1):",
        "",
    ]
    lines += ["| server | p50 c=1 | p99 c=1 | req/s c=16 | first answer | PSS |"]
    lines += ["|---|---|---|---|---|---|"]
    for name, r in report["ratios"].items():
        lines.append(
            f"| {name} | {r['p50_c1']} | {r['p99_c1']} | {r['throughput_c16']} | "
            f"{r['first_answer']} | {r['pss']} |"
        )
    lines += ["", f"What the log path costs, against `{NO_LOG}` (PREDICTION_LOG=none):", ""]
    lines += ["| server | p50 c=1 | p99 c=1 | req/s c=16 | PSS MiB more |", "|---|---|---|---|---|"]
    for name, r in report["log_cost"].items():
        lines.append(
            f"| {name} | {r['p50_c1']} | {r['p99_c1']} | {r['throughput_c16']} | "
            f"{r['pss_mib_more']} |"
        )
    lines += [
        "",
        f"Dollars per million predictions at Cloud Run's list prices: an instance of "
        f"{report['machine']['cpus']} vCPUs and the least memory setting that holds the server's "
        f"PSS {MEMORY_HEADROOM}x, busy at the c=16 throughput, plus the request fee "
        "(a floor: idle instances and cold starts are not counted):",
        "",
        "| server | memory GiB | instance hours | $ per million |",
        "|---|---|---|---|",
    ]
    for name, c in report.get("cost_per_million", {}).items():
        lines.append(f"| {name} | {c['memory_gib']} | {c['instance_hours']} | {c['dollars']} |")
    first = ", ".join(f"{name} {row['first_answers_s']}" for name, row in report["servers"].items())
    lines += ["", f"First answers of every fresh start, in turn (s; the table: median): {first}."]
    for name, row in report["servers"].items():
        if "emulator_cpu_s_during_load" in row:
            lines.append(
                f"{name}: bqemulator (a Python process on the same 2 CPUs, standing in for "
                f"BigQuery, run at nice 19) used {row['emulator_cpu_s_during_load']} CPU-seconds "
                "during the load rounds."
            )
    return lines


def http_minus_in_process(report: dict[str, Any]) -> dict[str, float]:
    """HTTP p50 at c=1 minus the in-process tokenize + run p50 at the thread count that answered
    it: the reference's one thread; the product's solo session (alone in flight) when it has one."""
    inp = report["in_process"]
    solo = inp.get("tokenize_run_solo_ms")
    gaps = {}
    for name, row in report["servers"].items():
        if name == FLOOR:
            continue
        base = solo if solo is not None and "refusals" in row else inp["tokenize_run_ms"]
        gaps[name] = round(row["c1"]["p50_ms"] - base["p50"], 3)
    return gaps


def detail_lines(report: dict[str, Any]) -> list[str]:
    inp = report["in_process"]
    run, product = inp["tokenize_run_ms"], inp["product_model_predict_ms"]
    lines = [
        "",
        f"In-process, one text per call, {inp['posts']} posts, {inp['onnxruntime_threads']} "
        f"onnxruntime thread: tokenize + run p50 {run['p50']} ms (p99 {run['p99']}); the "
        f"product's Model.predict p50 {product['p50']} ms (p99 {product['p99']}).",
    ]
    if inp.get("tokenize_run_solo_ms"):
        solo_run, solo_product = inp["tokenize_run_solo_ms"], inp["product_model_predict_solo_ms"]
        lines[-1] += (
            f" On the solo session ({inp['solo_onnxruntime_threads']} threads, what answers a "
            f"product request alone in flight): tokenize + run p50 {solo_run['p50']} ms (p99 "
            f"{solo_run['p99']}); Model.predict p50 {solo_product['p50']} ms (p99 "
            f"{solo_product['p99']})."
        )
    lines += [
        "HTTP p50 at c=1 minus in-process tokenize + run p50 at the same thread count "
        "(the reference: one thread; the product: its solo session): "
        + ", ".join(f"{name} {gap} ms" for name, gap in report["http_minus_in_process_ms"].items())
        + ".",
        "",
        "Cold start phase by phase (seconds, median of fresh processes; first answer above "
        "also includes functions-framework's start and gunicorn's fork):",
        "",
        "| function | interpreter | import | fetch + verify | onnxruntime + tokenizers import "
        "| session | first run | first log | total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in report["cold_start"].items():
        lines.append(
            f"| {name} | {p['interpreter_s']} | {p['import_s']} | {p['fetch_verify_s']} | "
            f"{p['runtime_import_s']} | {p['session_s']} | {p['first_run_s']} | "
            f"{p.get('first_log_s', '-')} | {p['total_s']} |"
        )
    floor = report["servers"].get(FLOOR)
    if floor is not None:
        bound = report["cold_start_bound_s"]
        lines += [
            "",
            f"The floor under any cold start here: `{FLOOR}` (benchmarks/floor_function.py, "
            "the libraries imported, no model) answers first after "
            f"{floor['first_answer_s']} s (median) and at c=1 in {floor['c1']['p50_ms']} ms "
            "(p50), what the framework, the server and the client cost any function. With the "
            "reference's session (the tokenizer included) and first run added, a function that "
            f"serves this bundle cannot answer first before about {bound} s on this machine.",
        ]
    lines += ["", "Product limits and log:", ""]
    for name, row in report["servers"].items():
        if "refusals" in row:
            lines.append(
                f"- {name}: 20 MB body -> {row['refusals']['body_20mb']}, 20,000 instances -> "
                f"{row['refusals']['instances_20000']}; "
                + (
                    f"{row['rows_logged']} rows logged for {row['answered']} answered predictions."
                    if row["rows_logged"] is not None
                    else f"{row['answered']} answered predictions, none logged by design."
                )
            )
    return lines


def write_markdown(report: dict[str, Any], path: Path) -> None:
    lines = header_lines(report) + server_table(report) + detail_lines(report)
    if report.get("against"):
        lines += ["", "Today's product against earlier commits, same rounds (below 1: today is "
                  "faster; req/s: above 1):", "", "| rows | p50 c=1 | p99 c=1 | req/s c=16 | "
                  "p99 c=16 |", "|---|---|---|---|---|"]  # fmt: skip
        for name, row in report["against"].items():
            lines.append(f"| {name} | " + " | ".join(str(v) for v in row.values()) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=os.environ.get("STORE", "local/store"))
    parser.add_argument(
        "--quick", action="store_true", help="fewer requests (a check that it works)"
    )
    parser.add_argument("--no-bq", action="store_true", help="skip the BigQuery (emulator) row")
    parser.add_argument("--note", default="", help="a line for the report's header")
    parser.add_argument("--out", default="reports/bench_serve_compare")
    parser.add_argument(
        "--against", action="append", default=[], metavar="REF",
        help="also serve the product as built at this commit (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    store = (ROOT / args.store).resolve()
    pointer = store / "models" / "production.json"
    if not pointer.exists():
        print(f"no promoted bundle at {pointer}: run `make run` first", file=sys.stderr)
        return 2
    for name in SERVER_SETTINGS:  # default configuration: nothing inherited from the shell
        os.environ.pop(name, None)
    # A server imports only its unpacked zip and its venv, as deployed: a PYTHONPATH from the shell
    # naming this checkout's functions/predict would put today's modules before another commit's.
    os.environ.pop("PYTHONPATH", None)
    version = json.loads(pointer.read_text())["version"]
    scale = Scale.of(args.quick)
    posts = official_test_posts()
    random.Random(0).shuffle(posts)
    report: dict[str, Any] = {
        "machine": machine_info(),
        "note": args.note,
        "bundle_version": version,
        "posts": len(posts),
        "scale": scale.__dict__,
    }
    threads = 1  # both functions' onnxruntime threads per request
    report["in_process"] = in_process(
        store / "models" / version, posts[: scale.in_process_posts], threads
    )
    deployed = deployed_function()
    # Bytecode for the reference too, as the product's zip gets at deploy.
    subprocess.run(
        [str(deployed.python), "-m", "compileall", "-q", str(REFERENCE_SOURCE), str(FLOOR_SOURCE)],
        check=True,
    )
    report["cold_start"] = cold_start(store, version, scale.cold_runs, deployed)
    earlier = dict(deployed_at(ref, deployed) for ref in args.against)
    report["servers"] = run_servers(
        store, version, text_bodies(posts), scale, not args.no_bq, deployed, earlier
    )
    report["ratios"] = ratios(report)
    report["against"] = against(report, list(earlier))
    report["log_cost"] = log_cost(report)
    report["cost_per_million"] = cost_per_million(report)
    report["http_minus_in_process_ms"] = http_minus_in_process(report)
    report["cold_start_bound_s"] = cold_start_bound(report)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    write_report(report, ROOT / args.out, write_markdown)
    return 0


def cold_start(store: Path, version: str, runs: int, deployed: DeployedFunction) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        product_env = {
            "MODEL_URI": str(store / "models" / "production.json"),
            "PREDICTION_LOG": f"duckdb://{tmp / 'cold.duckdb'}",
            "DEAD_LETTER_URI": str(tmp / "dead-letter"),
            "BUNDLE_CACHE_DIR": str(tmp / "cache"),
        }
        reference_env = {"REFERENCE_BUNDLE_DIR": str(store / "models" / version)}
        return {
            "reference": cold_phases("reference", reference_env, runs, deployed),
            "product, DuckDB log": cold_phases("product", product_env, runs, deployed),
        }


def cold_start_bound(report: dict[str, Any]) -> float:
    """The floor function's first answer plus the reference's session and first run: the least
    first answer of any function that loads this bundle, the imports being in the floor's."""
    reference = report["cold_start"]["reference"]
    floor = report["servers"][FLOOR]["first_answer_s"]
    return round(floor + reference["session_s"] + reference["first_run_s"], 3)


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "processor": processor(),
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    sys.exit(main())
