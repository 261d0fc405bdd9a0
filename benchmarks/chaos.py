"""Fault injection against the served function: `make chaos` -> reports/chaos.{json,md}.

The function runs as in the lifecycle tests (functions-framework subprocess, gunicorn arbiter and
worker) and logs through the bq:// sink into bqemulator, reached through a local TCP proxy that
can refuse connections (BigQuery down) or hold every request past the client's timeout
(BigQuery slow). CONCURRENCY clients post real CONSTRAINT posts (1-4 per request, each request
with its own X-Request-Id) while one fault is injected:

  a  BigQuery down for DOWN_S, then back
  b  BigQuery slow: every call held DELAY_S (> the sink's 10 s call timeout) for SLOW_S
  c  the whole instance frozen (SIGSTOP) right after its last responses, then SIGCONT + SIGTERM
     and SIGKILL KILL_AFTER_S later, as Cloud Run stops an instance
  d  SIGKILL of the whole instance mid-traffic (an out-of-memory kill); d-stdout: the same with
     PREDICTION_LOG=stdout (production's sink; the rows are the log lines the platform keeps);
     d-duckdb: the same with the local default (lines spooled beside the DuckDB file)
  e  the artifact store (fake-gcs-server behind the proxy) slow, then serving a corrupt model
     file, while a promotion is pending: the hot reload must keep the old version and back off
  f  a promotion during traffic: every instance must switch within the refresh bound, and no
     response or row may mix versions
  g  BigQuery down and the gs:// dead letter stalled (every call held STORE_STALL_S): spills
     give up after the upload's own deadline and the rows go to stderr as
     PREDICTION_LOG_DEAD_ROW lines, which replay-dead-rows loads back from the function's log
  h  BigQuery slow with a small buffer (OVERFLOW_BUFFER_ROWS): rows past it spill from the
     request threads; every dead-letter file must have its PREDICTION_LOG_SPILL line (what the
     alert counts), and request latency stays that of a local file write
  i  PREDICTION_LOG=stdout and stdout blocked (its reader paused BLOCK_S): requests wait at the
     write, none is answered without its row, and every row is there once stdout drains
  j  a promotion while a candidate is live: the pointer holds one candidate at a time, so two
     runs, j-canary (v2 answering CANARY_FRACTION of the requests) and j-shadow (v2 scoring
     every request off the request path, rows logged with shadow = TRUE); each promotes the
     candidate with `python -m export promote-candidate` mid-traffic. Shadow rows are counted
     apart: none may stand for a live answer, and every live answer is in the table once

After each: `python -m monitoring replay` of the dead letter, then the table is compared with
what was answered: rows lost, rows duplicated, versions served.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

from production_pointer import CANARY, SHADOW
from testing.bigquery_emulator import BigQueryEmulator
from testing.fake_gcs import FakeGcs, start_fake_gcs
from testing.function_server import ServedFunction, launch_function
from testing.paths import ROOT
from testing.processes import free_port

V2 = "20990101T000000Z-c4a05e0"
# v2 is production's own weights at three times the temperature (add_version), its manifest's
# numbers copied from production's: the promotion gate has nothing of v2's own to judge, and on a
# store whose production bundle lacks one of the gate's numbers (a bundle published by hand, or
# from before the gate) it refuses. The override is what an operator gives then; the gate still
# runs, and a refusal it overrides is logged with this reason.
GATE_OVERRIDE = "chaos: v2 is production's weights at another temperature, its numbers copied"
CORRUPT = "does not match its sha256"  # the log line of a bundle file refused by verification
DATA = ROOT / "data" / "constraint-covid19-fakenews" / "english_test_with_labels.csv"


# ---- a TCP proxy that can go down or slow --------------------------------------------------------


class FaultProxy:
    """127.0.0.1:<port> -> upstream. `down()` closes the listener and every open connection
    (callers get connection refused, as from a stopped server); `up()` listens again on the same
    port. `delay_s` holds every client->upstream chunk that long before forwarding it (a chunk
    whose client gave up is still delivered, as a slow backend may still commit it)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = free_port()
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._in_transit = 0
        self._listener: socket.socket | None = None
        self.up()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: a bare close() leaves the port listening until the blocked
            # accept() in the other thread returns.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def drain(self, timeout_s: float) -> None:
        """Wait until no held chunk is left to deliver."""
        deadline = time.monotonic() + timeout_s
        while self._in_transit and time.monotonic() < deadline:
            time.sleep(0.1)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, held: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if held and self.delay_s > 0:
                    with self._lock:
                        self._in_transit += 1
                    try:
                        time.sleep(self.delay_s)
                        target.sendall(chunk)
                    finally:
                        with self._lock:
                            self._in_transit -= 1
                else:
                    target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._conns -= {source, target}


# ---- traffic -----------------------------------------------------------------------------------


@dataclass
class Answer:
    request_id: str
    instances: int
    status: int | None  # None: no answer (connection refused or cut, timeout)
    version: str | None
    done_at: float
    error: str | None = None
    latency_s: float | None = None


class Traffic:
    """CONCURRENCY clients posting until stopped; every request and its answer is recorded."""

    def __init__(self, url: str, texts: list[str], concurrency: int, tag: str) -> None:
        self.url, self.texts, self.concurrency, self.tag = url, texts, concurrency, tag
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Traffic:
        for worker in range(self.concurrency):
            thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, worker: int) -> None:
        rng = random.Random(worker)
        session = requests.Session()
        k = 0
        while not self._stop.is_set():
            k += 1
            texts = rng.sample(self.texts, rng.randint(1, 4))
            request_id = f"chaos-{self.tag}-{worker}-{k}"
            body = {"instances": [{"text": t} for t in texts]}
            sent = _now()
            try:
                response = session.post(
                    self.url, json=body, headers={"X-Request-Id": request_id}, timeout=30
                )
                version = response.json().get("model_version") if response.ok else None
                answer = Answer(request_id, len(texts), response.status_code, version, _now())
            except (requests.RequestException, ValueError) as exc:
                answer = Answer(request_id, len(texts), None, None, _now(), type(exc).__name__)
                time.sleep(0.2)  # the server is gone or refusing: do not spin
            answer.latency_s = answer.done_at - sent
            with self._lock:
                self.answers.append(answer)

    def ok(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 200]

    def latency(self, since: float, until: float) -> dict[str, Any]:
        """Latency of the requests answered 200 between since and until (monotonic)."""
        times = sorted(
            a.latency_s for a in self.ok() if since <= a.done_at <= until and a.latency_s
        )
        if not times:
            return {"answered": 0}

        def pick(q: float) -> float:
            return round(times[min(len(times) - 1, int(q * len(times)))], 3)

        return {"answered": len(times), "p50_s": pick(0.5), "p99_s": pick(0.99),
                "max_s": round(times[-1], 3)}  # fmt: skip


def _now() -> float:
    return time.monotonic()


# ---- the instance ------------------------------------------------------------------------------


def _processes(served: ServedFunction) -> list[psutil.Process]:
    """The instance: functions-framework's gunicorn arbiter and its worker(s)."""
    try:
        parent = psutil.Process(served.process.pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_all(served: ServedFunction, sig: signal.Signals) -> None:
    for process in _processes(served):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(sig)


def stop_like_cloud_run(served: ServedFunction, kill_after_s: float) -> dict[str, Any]:
    """SIGTERM to the entrypoint, SIGKILL to everything left kill_after_s later."""
    started = _now()
    with contextlib.suppress(ProcessLookupError):
        served.process.send_signal(signal.SIGTERM)
    try:
        served.process.wait(timeout=kill_after_s)
        killed = False
    except subprocess.TimeoutExpired:
        killed = True
    _signal_all(served, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        served.process.wait(timeout=10)
    return {"exit_s": round(_now() - started, 2), "sigkilled": killed}


_STARTED: list[ServedFunction] = []  # killed at the end whatever happened


def start_instance(env: dict[str, str], log_path: Path) -> ServedFunction:
    served = launch_function(env, log_path)
    _STARTED.append(served)
    served.wait_until_up()
    # GET is the readiness check: it loads the model and answers 200 once it serves.
    deadline = _now() + 120
    while _now() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(served.url, timeout=60).status_code == 200:
                return served
        time.sleep(0.5)
    raise RuntimeError(f"the function never became ready:\n{served.log()[-3000:]}")


# ---- the store and the table -------------------------------------------------------------------


def add_version(store: Path, version: str) -> None:
    """A second version of the production bundle: same weights, three times the temperature (so
    its answers differ), its own manifest. Published, not promoted."""
    current = json.loads((store / "models" / "production.json").read_text())["version"]
    bundle = store / "models" / version
    shutil.copytree(store / "models" / current, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["version"] = version
    manifest["calibration"]["temperature"] *= 3
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def production_only(store: Path, into: Path) -> Path:
    """A store holding just the production bundle and its pointer."""
    pointer = store / "models" / "production.json"
    version = json.loads(pointer.read_text())["version"]
    (into / "models").mkdir(parents=True)
    shutil.copytree(store / "models" / version, into / "models" / version)
    shutil.copy(pointer, into / "models" / "production.json")
    return into


@dataclass
class Table:
    emulator: BigQueryEmulator
    dataset: str
    engine: Any = None

    @classmethod
    def create(cls, emulator: BigQueryEmulator, name: str) -> Table:
        from monitoring._engines import BigQueryEngine

        dataset = f"chaos_{name.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
        engine = BigQueryEngine(emulator.project, dataset)
        engine.create_tables()
        return cls(emulator, dataset, engine)

    @property
    def uri(self) -> str:
        return f"bq://{self.emulator.project}.{self.dataset}.predictions"

    def rows(self) -> list[dict[str, Any]]:
        """Every row of the raw table (not a view): live answers and shadow rows alike."""
        return self.engine.query(
            "SELECT row_id, request_id, instance_index, model_version, shadow "
            f"FROM `{self.emulator.project}.{self.dataset}.predictions`"
        )

    def replay(self, dead_letter: Path | str, *extra: str, **env_extra: str) -> str:
        """`monitoring replay` of the dead letter, or with extra = ("replay-dead-rows", FILE)
        of the PREDICTION_LOG_DEAD_ROW lines of a log file."""
        env = {**os.environ, "BIGQUERY_EMULATOR_HOST": self.emulator.host, **env_extra}
        # The proxy was drained first (_finish): no held insert can still land, which is what
        # replay's minimum age for unanswered-* files waits for in production.
        command = list(extra) if extra else ["replay", "--min-age-s", "0"]
        result = subprocess.run(
            [sys.executable, "-m", "monitoring", *command, "--log", self.uri,
             "--dead-letter", str(dead_letter)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        lines = [line for line in result.stdout.splitlines() if line.startswith("replay")]
        return lines[-1] if lines else f"replay failed: {result.stderr.strip()[-300:]}"


def dead_letter_rows(folder: Path) -> dict[str, int]:
    counts = Counter()
    for path in folder.glob("*.jsonl"):
        kind = path.name.split("-", 1)[0]
        counts[kind] += sum(1 for line in path.read_text().splitlines() if line.strip())
    return dict(counts)


def spill_counts(spilled: Mapping[str, int]) -> dict[str, int]:
    """Dead-letter rows by what replay does with them: loaded (unanswered ones after their
    wait), or set aside as rejected."""
    return {
        "dead_letter_rows": spilled.get("predictions", 0) + spilled.get("unanswered", 0),
        "unanswered_rows": spilled.get("unanswered", 0),
        "rejected_rows": spilled.get("rejected", 0),
    }


def stdout_rows(log_text: str) -> list[dict[str, Any]]:
    """The prediction rows PREDICTION_LOG=stdout wrote (the lines Cloud Logging would route)."""
    rows = []
    for line in log_text.splitlines():
        if '"prediction_log_row"' not in line:
            continue
        with contextlib.suppress(ValueError, KeyError):
            rows.append(json.loads(json.loads(line)["prediction_log_row"]))
    return rows


def tally(
    traffic: Traffic, rows_before: list[dict[str, Any]], rows_after: list[dict[str, Any]]
) -> dict[str, Any]:
    """Answered vs stored: the comparison every scenario reports. Only live rows count: a shadow
    row (shadow = TRUE, same request id and instance) is no answer (shadow_tally counts them)."""
    ok = traffic.ok()
    answered = {(a.request_id, i) for a in ok for i in range(a.instances)}
    version_of = {a.request_id: a.version for a in ok}
    rows_before = [r for r in rows_before if r.get("shadow") is not True]
    rows_after = [r for r in rows_after if r.get("shadow") is not True]
    mine = [r for r in rows_after if r["request_id"].startswith(f"chaos-{traffic.tag}-")]
    keys = Counter((r["request_id"], r["instance_index"]) for r in mine)
    row_ids = Counter(r["row_id"] for r in mine)
    mixed = sorted(
        {r["request_id"] for r in mine if version_of.get(r["request_id"], r["model_version"])
         != r["model_version"]}
    )  # fmt: skip
    statuses = Counter(
        str(a.status) if a.status else (a.error or "no answer") for a in traffic.answers
    )
    return {
        "requests": len(traffic.answers),
        "answered_200": len(ok),
        "statuses": dict(statuses),
        "predictions_answered": len(answered),
        "rows_in_table_before_replay": sum(
            1 for r in rows_before if r["request_id"].startswith(f"chaos-{traffic.tag}-")
        ),
        "rows_in_table_after_replay": len(mine),
        "rows_lost": len(answered - set(keys)),
        "duplicate_rows": sum(n - 1 for n in row_ids.values())
        + sum(n - 1 for n in keys.values() if n > 1),
        "rows_of_unanswered_requests": len(set(keys) - answered),
        "versions_served": dict(Counter(a.version for a in ok)),
        "responses_with_rows_of_another_version": len(mixed),
    }


def shadow_tally(traffic: Traffic, rows: list[dict[str, Any]], candidate: str) -> dict[str, Any]:
    """The shadow rows of the raw table, apart from the live ones: each must be the candidate's
    score of a prediction answered 200 by another version, once; none may share a row_id with
    any other row, live or shadow."""
    ok = {a.request_id: a for a in traffic.ok()}
    mine = [r for r in rows if r["request_id"].startswith(f"chaos-{traffic.tag}-")]
    shadow = [r for r in mine if r.get("shadow") is True]
    keys = Counter((r["request_id"], r["instance_index"]) for r in shadow)
    answered = {(a.request_id, i) for a in ok.values() for i in range(a.instances)}
    return {
        "shadow_rows": len(shadow),
        "shadow_duplicates": sum(n - 1 for n in keys.values() if n > 1),
        "row_ids_twice_in_raw_table": sum(
            n - 1 for n in Counter(r["row_id"] for r in mine).values() if n > 1
        ),
        "shadow_rows_of_unanswered_predictions": len(set(keys) - answered),
        "shadow_versions": dict(Counter(r["model_version"] for r in shadow)),
        # After the promotion the candidate is production: nothing left to compare it with.
        "shadow_rows_of_candidate_answers": sum(
            1 for r in shadow if r["request_id"] in ok and ok[r["request_id"]].version == candidate
        ),
        "shadow_rows_not_of_candidate": sum(1 for r in shadow if r["model_version"] != candidate),
    }


# ---- scenarios ---------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    emulator: BigQueryEmulator
    bq_proxy: FaultProxy
    store: Path
    texts: list[str]
    tmp: Path
    results: dict[str, Any] = field(default_factory=dict)

    def env(self, table: Table, dead: Path | str, **extra: str) -> dict[str, str]:
        return {
            "MODEL_URI": str(self.store / "models" / "production.json"),
            "PREDICTION_LOG": table.uri,
            "BIGQUERY_EMULATOR_HOST": self.bq_proxy.host,
            "DEAD_LETTER_URI": str(dead),
            "MODEL_REFRESH_SECONDS": "0",
            **extra,
        }


def _scenario(ctx: Context, name: str) -> tuple[Table, Path, Path]:
    folder = ctx.tmp / name
    folder.mkdir()
    return Table.create(ctx.emulator, name), folder / "dead", folder / "function.log"


def _finish(
    ctx: Context,
    name: str,
    table: Table,
    dead: Path,
    traffic: Traffic,
    extra: dict[str, Any],
    of_rows: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Replay the dead letter and tally; `of_rows` adds what it reads from the rows after it."""
    ctx.bq_proxy.delay_s = 0.0
    ctx.bq_proxy.drain(timeout_s=60)
    before = table.rows()
    spilled = dead_letter_rows(dead)
    replay = table.replay(dead)
    after = table.rows()
    result = {
        **tally(traffic, before, after),
        **spill_counts(spilled),
        "rows_replayed": len(after) - len(before),
        "replay": replay,
        **(of_rows(after) if of_rows else {}),
        **extra,
    }
    ctx.results[name] = result
    print(f"{name}: {json.dumps(result)}", flush=True)
    return result


def scenario_a(ctx: Context) -> None:
    """BigQuery down for DOWN_S, then back."""
    table, dead, log = _scenario(ctx, "a")
    served = start_instance(ctx.env(table, dead), log)
    traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, "a").start()
    time.sleep(ctx.args.lead_s)
    ctx.bq_proxy.down()
    time.sleep(ctx.args.down_s)
    ctx.bq_proxy.up()
    time.sleep(ctx.args.tail_s)
    traffic.stop()
    stop = stop_like_cloud_run(served, ctx.args.kill_after_s)
    _finish(ctx, "a", table, dead, traffic, {"bigquery_down_s": ctx.args.down_s, "stop": stop})


def scenario_b(ctx: Context) -> None:
    """BigQuery slow: every call held past the client's timeout for SLOW_S."""
    table, dead, log = _scenario(ctx, "b")
    served = start_instance(ctx.env(table, dead), log)
    traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, "b").start()
    time.sleep(ctx.args.lead_s)
    ctx.bq_proxy.delay_s = ctx.args.delay_s
    time.sleep(ctx.args.slow_s)
    ctx.bq_proxy.delay_s = 0.0
    time.sleep(ctx.args.tail_s)
    traffic.stop()
    stop = stop_like_cloud_run(served, ctx.args.kill_after_s)
    extra = {"delay_s": ctx.args.delay_s, "slow_s": ctx.args.slow_s, "stop": stop,
             "overflow_warnings": served.log().count("buffer full")}  # fmt: skip
    _finish(ctx, "b", table, dead, traffic, extra)


def scenario_c(ctx: Context) -> None:
    """Frozen right after the last responses; SIGCONT + SIGTERM; SIGKILL 10 s later."""
    table, dead, log = _scenario(ctx, "c")
    served = start_instance(ctx.env(table, dead), log)
    traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, "c").start()
    time.sleep(ctx.args.traffic_s)
    traffic.stop()
    _signal_all(served, signal.SIGSTOP)  # the platform throttles the CPU to nothing
    time.sleep(ctx.args.freeze_s)
    _signal_all(served, signal.SIGCONT)
    stop = stop_like_cloud_run(served, ctx.args.kill_after_s)
    _finish(ctx, "c", table, dead, traffic, {"frozen_s": ctx.args.freeze_s, "stop": stop})


def _kill_mid_traffic(ctx: Context, name: str, env: dict[str, str], log: Path) -> Traffic:
    served = start_instance(env, log)
    traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, name).start()
    time.sleep(ctx.args.traffic_s)
    _signal_all(served, signal.SIGKILL)
    killed_at = _now()
    served.process.wait(timeout=10)
    traffic.stop()
    traffic.killed_at = killed_at  # type: ignore[attr-defined]
    return traffic


def _in_flight(traffic: Traffic) -> dict[str, int]:
    """Requests the kill cut: no answer, ended within a second of it (the rest were refused)."""
    killed_at = traffic.killed_at  # type: ignore[attr-defined]
    cut = [a for a in traffic.answers if a.status is None and a.done_at - killed_at < 1.0]
    return {"requests_in_flight": len(cut), "predictions_in_flight": sum(a.instances for a in cut)}


def scenario_d(ctx: Context) -> None:
    """SIGKILL mid-traffic (bq:// sink: rows of the last flush window are in memory)."""
    table, dead, log = _scenario(ctx, "d")
    traffic = _kill_mid_traffic(ctx, "d", ctx.env(table, dead), log)
    _finish(ctx, "d", table, dead, traffic, _in_flight(traffic))


def scenario_d_stdout(ctx: Context) -> None:
    """SIGKILL mid-traffic with PREDICTION_LOG=stdout: each row is written before its answer."""
    table, dead, log = _scenario(ctx, "d-stdout")
    traffic = _kill_mid_traffic(ctx, "d-stdout", ctx.env(table, dead, PREDICTION_LOG="stdout"), log)
    rows = stdout_rows(log.read_text(errors="replace"))
    result = {**tally(traffic, rows, rows), **_in_flight(traffic)}
    result |= {"dead_letter_rows": 0, "rejected_rows": 0, "rows_replayed": 0,
               "replay": "not needed: the rows are log lines"}  # fmt: skip
    ctx.results["d-stdout"] = result
    print(f"d-stdout: {json.dumps(result)}", flush=True)


def scenario_d_duckdb(ctx: Context) -> None:
    """SIGKILL mid-traffic with the local default (duckdb://: a line spooled before each answer,
    loaded into the table when it is next opened)."""
    from prediction_log.line_spool import connect_and_load

    table, dead, log = _scenario(ctx, "d-duckdb")
    database = log.with_name("predictions.duckdb")
    env = ctx.env(table, dead, PREDICTION_LOG=f"duckdb://{database}")
    traffic = _kill_mid_traffic(ctx, "d-duckdb", env, log)
    with connect_and_load(database, lock_wait_s=30) as con:
        cursor = con.execute("SELECT * FROM predictions")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    result = {**tally(traffic, rows, rows), **_in_flight(traffic)}
    result |= {"dead_letter_rows": 0, "rejected_rows": 0, "rows_replayed": 0,
               "replay": "not needed: the spooled lines are loaded"}  # fmt: skip
    ctx.results["d-duckdb"] = result
    print(f"d-duckdb: {json.dumps(result)}", flush=True)


def _reload_log(log_text: str) -> dict[str, int]:
    return {
        "hot_reload_failures_logged": log_text.count("hot reload failed"),
        "switches_logged": log_text.count("switched model"),
    }


def _switch(traffic: Traffic, old: str, new: str, since: float) -> dict[str, Any]:
    """When the first answer of `new` came, and whether `old` ever answered after it."""
    ok = sorted(traffic.ok(), key=lambda a: a.done_at)
    first_new = next((a.done_at for a in ok if a.version == new), None)
    return {
        "switched": first_new is not None,
        "switch_after_s": None if first_new is None else round(first_new - since, 2),
        "old_answers_after_switch": 0
        if first_new is None
        else sum(1 for a in ok if a.version == old and a.done_at > first_new + 1.0),
    }


def scenario_e(ctx: Context) -> None:
    """Store slow, then serving a corrupt model file, while a promotion is pending."""
    from artifact_store import open_store
    from export import publish

    table, dead, log = _scenario(ctx, "e")
    fake: FakeGcs = start_fake_gcs(ctx.tmp / "e" / "fake-gcs.log")
    try:
        gcs_proxy = FaultProxy(int(fake.url.rsplit(":", 1)[1]))
        local = production_only(ctx.store, ctx.tmp / "e" / "store")
        old = json.loads((local / "models" / "production.json").read_text())["version"]
        fake.upload_folder(local / "models", "chaos", "store/models")
        refresh = ctx.args.refresh_s
        env = ctx.env(
            table, dead,
            MODEL_URI="gs://chaos/store/models/production.json",
            STORAGE_EMULATOR_HOST=f"http://{gcs_proxy.host}",
            MODEL_REFRESH_SECONDS=str(refresh),
            MODEL_RELOAD_BACKOFF_MAX_SECONDS=str(4 * refresh),
        )  # fmt: skip
        served = start_instance(env, log)
        traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, "e").start()
        time.sleep(ctx.args.lead_s)
        # Publish and promote v2 through the fast path; the instance sees the store slow.
        previous_host = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = fake.url
        try:
            add_version(local, V2)
            store = open_store("gs://chaos/store")
            publish.publish(local / "models" / V2, store)
            gcs_proxy.delay_s = ctx.args.delay_s
            publish.promote(store, V2, override=GATE_OVERRIDE)
            promoted_at = _now()
            time.sleep(ctx.args.slow_s)
            # Now fast, but the model file is corrupt: verification must refuse it.
            blob = fake.client().bucket("chaos").blob(f"store/models/{V2}/model.onnx")
            good = (local / "models" / V2 / "model.onnx").read_bytes()
            blob.upload_from_string(good[:-1] + bytes([good[-1] ^ 1]))
            gcs_proxy.delay_s = 0.0
            gcs_proxy.drain(timeout_s=60)
            refused_before = served.log().count(CORRUPT)
            time.sleep(ctx.args.corrupt_s)
            refused = served.log().count(CORRUPT) - refused_before
            blob.upload_from_string(good)  # repaired: the next try after the backoff switches
            repaired_at = _now()
            deadline = repaired_at + 8 * refresh + 60
            while _now() < deadline and not any(a.version == V2 for a in traffic.ok()):
                time.sleep(0.5)
            time.sleep(2)
        finally:
            if previous_host is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = previous_host
        traffic.stop()
        stop = stop_like_cloud_run(served, ctx.args.kill_after_s)
        switch = _switch(traffic, old, V2, promoted_at)
        switch["switch_after_repair_s"] = (
            None
            if not switch["switched"]
            else round(promoted_at + switch["switch_after_s"] - repaired_at, 2)
        )
        extra = {**switch, **_reload_log(served.log()), "stop": stop,
                 "corrupt_downloads_refused": refused,
                 "checks_while_corrupt": int(ctx.args.corrupt_s / refresh),
                 "store_delay_s": ctx.args.delay_s, "slow_s": ctx.args.slow_s,
                 "corrupt_s": ctx.args.corrupt_s, "refresh_s": refresh}  # fmt: skip
        _finish(ctx, "e", table, dead, traffic, extra)
    finally:
        fake.stop()


def scenario_f(ctx: Context) -> None:
    """A promotion during traffic."""
    from artifact_store import open_store
    from export import publish

    table, dead, log = _scenario(ctx, "f")
    local = production_only(ctx.store, ctx.tmp / "f" / "store")
    old = json.loads((local / "models" / "production.json").read_text())["version"]
    add_version(local, V2)
    refresh = ctx.args.refresh_s
    env = ctx.env(table, dead, MODEL_URI=str(local / "models" / "production.json"),
                  MODEL_REFRESH_SECONDS=str(refresh))  # fmt: skip
    served = start_instance(env, log)
    traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, "f").start()
    time.sleep(ctx.args.traffic_s / 3)
    publish.promote(open_store(local), V2, override=GATE_OVERRIDE)
    promoted_at = _now()
    time.sleep(max(2 * ctx.args.traffic_s / 3, refresh + 10))
    traffic.stop()
    stop = stop_like_cloud_run(served, ctx.args.kill_after_s)
    extra = {**_switch(traffic, old, V2, promoted_at), **_reload_log(served.log()),
             "refresh_s": refresh, "stop": stop}  # fmt: skip
    _finish(ctx, "f", table, dead, traffic, extra)


def scenario_g(ctx: Context) -> None:
    """BigQuery down and the gs:// dead letter stalled at the same time."""
    table, local_dead, log = _scenario(ctx, "g")
    fake: FakeGcs = start_fake_gcs(ctx.tmp / "g" / "fake-gcs.log")
    try:
        fake.client().create_bucket("chaos")
        gcs_proxy = FaultProxy(int(fake.url.rsplit(":", 1)[1]))
        dead = "gs://chaos/dead_letter"
        env = ctx.env(table, dead, STORAGE_EMULATOR_HOST=f"http://{gcs_proxy.host}")
        served = start_instance(env, log)
        traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, "g").start()
        time.sleep(ctx.args.lead_s)
        ctx.bq_proxy.down()
        gcs_proxy.delay_s = ctx.args.store_stall_s
        fault_from = _now()
        time.sleep(ctx.args.down_s)
        ctx.bq_proxy.up()
        gcs_proxy.delay_s = 0.0
        fault_to = _now()
        time.sleep(ctx.args.tail_s)
        traffic.stop()
        stop = stop_like_cloud_run(served, ctx.args.kill_after_s)
        gcs_proxy.drain(timeout_s=60)  # a held upload may still land: then its rows are twice
        text = served.log()
        before = table.rows()
        spilled: Counter[str] = Counter()  # rows in the gs:// dead letter by kind, as landed
        for blob in fake.client().list_blobs("chaos", prefix="dead_letter/"):
            kind = blob.name.rsplit("/", 1)[-1].split("-", 1)[0]
            spilled[kind] += len(blob.download_as_bytes().splitlines())
        replayed = table.replay(dead, STORAGE_EMULATOR_HOST=fake.url)
        dead_rows = table.replay(local_dead, "replay-dead-rows", str(log))
        after = table.rows()
        result = {
            **tally(traffic, before, after),
            **spill_counts(spilled),
            "rows_replayed": len(after) - len(before),
            "replay": f"{replayed}; {dead_rows}",
            "dead_row_lines": text.count("PREDICTION_LOG_DEAD_ROW "),
            "spill_lines": text.count("PREDICTION_LOG_SPILL "),
            "latency_during_fault": traffic.latency(fault_from, fault_to),
            "bigquery_down_s": ctx.args.down_s,
            "store_stall_s": ctx.args.store_stall_s,
            "stop": stop,
        }
        ctx.results["g"] = result
        print(f"g: {json.dumps(result)}", flush=True)
    finally:
        fake.stop()


def scenario_h(ctx: Context) -> None:
    """BigQuery slow and a small buffer: overflow spills from the request threads."""
    table, dead, log = _scenario(ctx, "h")
    env = ctx.env(table, dead, PREDICTION_LOG_BUFFER_ROWS=str(ctx.args.overflow_buffer_rows))
    served = start_instance(env, log)
    traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, "h").start()
    time.sleep(ctx.args.lead_s)
    before_fault = traffic.latency(0.0, _now())
    ctx.bq_proxy.delay_s = ctx.args.delay_s
    fault_from = _now()
    time.sleep(ctx.args.slow_s)
    ctx.bq_proxy.delay_s = 0.0
    fault_to = _now()
    time.sleep(ctx.args.tail_s)
    traffic.stop()
    stop = stop_like_cloud_run(served, ctx.args.kill_after_s)
    text = served.log()
    files = len(list(dead.glob("*.jsonl")))
    extra = {
        "buffer_rows": ctx.args.overflow_buffer_rows,
        "delay_s": ctx.args.delay_s,
        "slow_s": ctx.args.slow_s,
        "dead_letter_files": files,
        "spill_lines": text.count("PREDICTION_LOG_SPILL "),
        "overflow_spill_lines": text.count("; buffer full)"),
        "latency_before_fault": before_fault,
        "latency_during_fault": traffic.latency(fault_from, fault_to),
        "stop": stop,
    }
    _finish(ctx, "h", table, dead, traffic, extra)


class PausablePipe:
    """Copies a process's stdout pipe into a file; pause() stops reading, so once the pipe's
    buffer (64 KiB on Linux) is full every write to it blocks, as when the platform's log
    collector stalls."""

    def __init__(self, pipe: Any, out: Path) -> None:
        self.pipe, self.out = pipe, out
        self.reading = threading.Event()
        self.reading.set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.out.open("ab") as sink:
            while True:
                self.reading.wait()
                chunk = self.pipe.read1(65536)
                if not chunk:
                    return
                sink.write(chunk)
                sink.flush()

    def pause(self) -> None:
        self.reading.clear()

    def resume(self) -> None:
        self.reading.set()


def scenario_i(ctx: Context) -> None:
    """PREDICTION_LOG=stdout with stdout blocked for BLOCK_S."""
    table, dead, log = _scenario(ctx, "i")
    env = ctx.env(table, dead, PREDICTION_LOG="stdout")
    served = launch_function(env, log, stdout_pipe=True)
    _STARTED.append(served)
    pipe = PausablePipe(served.process.stdout, log)
    served.wait_until_up()
    deadline = _now() + 120
    while _now() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(served.url, timeout=60).status_code == 200:
                break
        time.sleep(0.5)
    traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, "i").start()
    time.sleep(ctx.args.lead_s)
    pipe.pause()
    blocked_from = _now()
    time.sleep(ctx.args.block_s)
    answered_while_blocked = sum(1 for a in traffic.ok() if a.done_at > blocked_from + 1.0)
    pipe.resume()
    blocked_to = _now()
    time.sleep(ctx.args.tail_s)
    traffic.stop()
    stop = stop_like_cloud_run(served, ctx.args.kill_after_s)
    pipe.thread.join(timeout=10)
    rows = stdout_rows(log.read_text(errors="replace"))
    result = {**tally(traffic, rows, rows)}
    result |= {
        "dead_letter_rows": len(list(dead.glob("*.jsonl"))) if dead.exists() else 0,
        "rejected_rows": 0,
        "rows_replayed": 0,
        "replay": "not needed: the rows are log lines",
        "block_s": ctx.args.block_s,
        "answered_while_blocked": answered_while_blocked,
        "latency_across_block": traffic.latency(blocked_from, blocked_to + 5.0),
        "stop": stop,
    }  # fmt: skip
    ctx.results["i"] = result
    print(f"i: {json.dumps(result)}", flush=True)


class HealthProbe:
    """GET / every period_s from its own client: the production version and the candidate as
    the instance itself reports them, with the time each answer came back."""

    def __init__(self, url: str, period_s: float = 0.2) -> None:
        self.url, self.period_s = url, period_s
        self.samples: list[tuple[float, str | None, dict[str, Any] | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> HealthProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            with contextlib.suppress(requests.RequestException, ValueError):
                body = session.get(self.url, timeout=10).json()
                self.samples.append((_now(), body.get("model_version"), body.get("candidate")))
            time.sleep(self.period_s)

    def candidate_loaded(self) -> bool:
        return bool(self.samples) and bool((self.samples[-1][2] or {}).get("loaded"))

    def first_serving(self, version: str) -> float | None:
        """When the first health answer naming `version` as production came back."""
        return next((at for at, serving, _ in self.samples if serving == version), None)

    def candidate_before(self, until: float) -> dict[str, Any] | None:
        return next((c for at, _, c in reversed(self.samples) if at <= until), None)


def _export(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m export --store STORE ...`, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "export", "--store", str(store), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _promoted_at(store: Path) -> float:
    """The pointer's promoted_at (written just before the pointer) on this process's clock."""
    pointer = json.loads((store / "models" / "production.json").read_text())
    written = datetime.fromisoformat(pointer["promoted_at"])
    return _now() - (datetime.now(UTC) - written).total_seconds()


def _promote_live_candidate(ctx: Context, name: str, mode: str) -> None:
    """Production v1 with v2 as the pointer's candidate (mode: canary or shadow), loaded before
    the traffic starts; LEAD_S into the traffic `promote-candidate` makes v2 production; TAIL_S
    more traffic once the instance serves it."""
    table, dead, log = _scenario(ctx, name)
    local = production_only(ctx.store, ctx.tmp / name / "store")
    old = json.loads((local / "models" / "production.json").read_text())["version"]
    add_version(local, V2)
    fraction = ctx.args.canary_fraction if mode == CANARY else None
    trial = _export(local, mode, V2, *(["--fraction", str(fraction)] if fraction else []))
    if trial.returncode != 0:
        raise RuntimeError(f"python -m export {mode} {V2} failed:\n{trial.stderr[-2000:]}")
    refresh = ctx.args.refresh_s
    env = ctx.env(table, dead, MODEL_URI=str(local / "models" / "production.json"),
                  MODEL_REFRESH_SECONDS=str(refresh))  # fmt: skip
    served = start_instance(env, log)
    probe = HealthProbe(served.url).start()
    # The candidate loads after production (a background thread): promoting one not yet loaded
    # would be scenario f again, not the hand-over of a loaded candidate.
    deadline = _now() + 60
    while _now() < deadline and not probe.candidate_loaded():
        time.sleep(0.2)
    loaded = probe.candidate_loaded()
    traffic = Traffic(served.url, ctx.texts, ctx.args.concurrency, name).start()
    time.sleep(ctx.args.lead_s)
    command_from = _now()
    promotion = _export(local, "promote-candidate", "--force", GATE_OVERRIDE)
    command_s = _now() - command_from
    promoted = promotion.returncode == 0
    promoted_at = _promoted_at(local) if promoted else command_from
    deadline = _now() + refresh + 60
    while promoted and _now() < deadline and probe.first_serving(V2) is None:
        time.sleep(0.2)
    time.sleep(ctx.args.tail_s)
    traffic.stop()
    probe.stop()
    stop = stop_like_cloud_run(served, ctx.args.kill_after_s)
    switched_at = probe.first_serving(V2)
    ok = traffic.ok()
    before = [a for a in ok if a.done_at < promoted_at]
    said = promotion.stderr
    if not promoted:
        gate = f"promotion failed (exit {promotion.returncode}): {said.strip()[-300:]}"
    else:
        gate = next(
            (word for mark, word in (("gate passed", "passed"), ("OVERRIDDEN", "overridden"))
             if mark in said),
            "verdict not logged",
        )  # fmt: skip
    extra = {
        "mode": mode,
        "fraction": fraction,
        "candidate_loaded_before_traffic": loaded,
        "answers_before_promotion": len(before),
        "candidate_answers_before_promotion": sum(1 for a in before if a.version == V2),
        "candidate_at_promotion": probe.candidate_before(promoted_at),
        "promote_exit": promotion.returncode,
        "promote_command_s": round(command_s, 2),
        "gate": gate,
        "switched": switched_at is not None,
        # From the pointer write to the first health answer naming v2 as production.
        "switch_after_s": None if switched_at is None else round(switched_at - promoted_at, 2),
        # Answers of v1 to requests sent after the instance said it serves v2: none may be.
        "old_answers_after_switch": 0 if switched_at is None else sum(
            1 for a in ok if a.version == old and a.done_at - (a.latency_s or 0) > switched_at
        ),
        "old_answers_after_promotion": sum(
            1 for a in ok if a.version == old and a.done_at > promoted_at
        ),
        "handed_over_without_second_load": "no second load" in served.log(),
        **_reload_log(served.log()),
        "refresh_s": refresh,
        "stop": stop,
    }  # fmt: skip
    _finish(ctx, name, table, dead, traffic, extra, lambda rows: shadow_tally(traffic, rows, V2))


def scenario_j(ctx: Context) -> None:
    """A promotion while a candidate is live: j-canary, then j-shadow (one candidate at a time)."""
    _promote_live_candidate(ctx, "j-canary", CANARY)
    _promote_live_candidate(ctx, "j-shadow", SHADOW)


SCENARIOS = {
    "a": scenario_a,
    "b": scenario_b,
    "c": scenario_c,
    "d": scenario_d,
    "d-stdout": scenario_d_stdout,
    "d-duckdb": scenario_d_duckdb,
    "e": scenario_e,
    "f": scenario_f,
    "g": scenario_g,
    "h": scenario_h,
    "i": scenario_i,
    "j": scenario_j,
}
TITLES = {
    "a": "BigQuery down, then back",
    "b": "BigQuery slow (past the call timeout)",
    "c": "frozen after responses, SIGTERM, SIGKILL",
    "d": "SIGKILL mid-traffic (bq:// sink)",
    "d-stdout": "SIGKILL mid-traffic (stdout sink)",
    "d-duckdb": "SIGKILL mid-traffic (duckdb:// sink, the local default)",
    "e": "store slow, then corrupt, during a reload",
    "f": "promotion during traffic",
    "g": "BigQuery down and the dead-letter store stalled",
    "h": "buffer overflow under load (BigQuery slow, small buffer)",
    "i": "stdout blocked (stdout sink)",
    "j": "promotion while a candidate is live",
    "j-canary": "promotion of a live canary under traffic",
    "j-shadow": "promotion of a live shadow under traffic",
}


# ---- report ------------------------------------------------------------------------------------


def _commit() -> str:
    """The commit the run measured, marked -dirty when the tree had uncommitted changes."""
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=7"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or "unknown"


def write_report(out: Path, args: argparse.Namespace, results: dict[str, Any], wall_s: float):
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "make chaos" + (f" CHAOS_FLAGS='{args.flags}'" if args.flags else "")
    settings = {
        k: v for k, v in vars(args).items() if k not in ("out", "flags", "commit", "load_at_start")
    }
    payload = {
        "command": command,
        "commit": args.commit,
        "load_average_at_start": args.load_at_start,
        "settings": settings,
        "wall_s": round(wall_s, 1),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "scenarios": results,
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    lines = [
        "# Fault injection (`make chaos`)",
        "",
        f"`{command}`: the function (functions-framework, gunicorn) logging through the bq:// sink "
        f"into bqemulator, {args.concurrency} clients posting 1-4 CONSTRAINT posts per request; "
        f"{round(wall_s)} s wall on {os.cpu_count()} CPUs, load average "
        f"{args.load_at_start[0]:.1f} at the start and {os.getloadavg()[0]:.1f} at the end; "
        f"commit {args.commit}. Rows are counted by prediction (request id, "
        "instance); 'lost' = answered with 200 but not in the table after the replay.",
        "",
        "| scenario | requests | 200 | predictions | rows before replay | dead letter | replayed "
        "| rows after | lost | duplicates | versions served | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        versions = ", ".join(f"{v[:8] if v else v}…: {n}" for v, n in r["versions_served"].items())
        lines.append(
            f"| {name}: {TITLES[name]} | {r['requests']} | {r['answered_200']} | "
            f"{r['predictions_answered']} | {r['rows_in_table_before_replay']} | "
            f"{r['dead_letter_rows']} | {r['rows_replayed']} | {r['rows_in_table_after_replay']} "
            f"| {r['rows_lost']} | {r['duplicate_rows']} | {versions} | {_notes(name, r)} |"
        )
    lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), ""]
    out.with_suffix(".md").write_text("\n".join(lines))


def _notes(name: str, r: dict[str, Any]) -> str:
    notes = []
    if "requests_in_flight" in r:
        notes.append(
            f"{r['requests_in_flight']} requests ({r['predictions_in_flight']} predictions) "
            "in flight at the kill"
        )
    if "switch_after_s" in r:
        notes.append(
            f"switched {r['switch_after_s']} s after the promotion"
            if r["switched"]
            else "never switched"
        )
        notes.append(f"{r['old_answers_after_switch']} old-version answers after the switch")
    if "corrupt_downloads_refused" in r:
        notes.append(
            f"corrupt v2 fetched and refused {r['corrupt_downloads_refused']} times in "
            f"{r['checks_while_corrupt']} pointer checks (backoff)"
        )
    if "spill_lines" in r and "dead_letter_files" in r:
        notes.append(
            f"{r['dead_letter_files']} dead-letter files, {r['spill_lines']} PREDICTION_LOG_SPILL "
            f"lines ({r['overflow_spill_lines']} overflow)"
        )
    if "dead_row_lines" in r:
        notes.append(f"{r['dead_row_lines']} PREDICTION_LOG_DEAD_ROW lines")
    for key in ("latency_during_fault", "latency_across_block"):
        if r.get(key, {}).get("answered"):
            lat = r[key]
            notes.append(f"{key.replace('_', ' ')}: p99 {lat['p99_s']} s, max {lat['max_s']} s")
    if r.get("mode") == "canary":
        notes.append(
            f"canary loaded before traffic: {r['candidate_loaded_before_traffic']}; it answered "
            f"{r['candidate_answers_before_promotion']} of {r['answers_before_promotion']} "
            "requests before the promotion"
        )
    if r.get("mode") == "shadow":
        work = (r["candidate_at_promotion"] or {}).get("shadow", {})
        notes.append(
            f"shadow loaded before traffic: {r['candidate_loaded_before_traffic']}; by the "
            f"promotion it had scored {work.get('scored')} requests and dropped "
            f"{work.get('dropped')} ({work.get('queued')} queued)"
        )
    if "shadow_rows" in r and (r["shadow_rows"] or r.get("mode") == "shadow"):
        notes.append(
            f"{r['shadow_rows']} shadow rows counted apart ({r['shadow_duplicates']} twice, "
            f"{r['shadow_rows_of_candidate_answers']} of the candidate's own answers)"
        )
    if "row_ids_twice_in_raw_table" in r:
        notes.append(f"{r['row_ids_twice_in_raw_table']} row_ids twice in the raw table")
    if "gate" in r:
        notes.append(f"promotion gate {r['gate']}")
    if "answered_while_blocked" in r:
        notes.append(f"{r['answered_while_blocked']} answers while stdout was blocked")
    if r.get("responses_with_rows_of_another_version"):
        notes.append(f"{r['responses_with_rows_of_another_version']} responses mixed versions")
    if r.get("stop", {}).get("sigkilled"):
        notes.append("needed SIGKILL")
    other = {k: v for k, v in r["statuses"].items() if k != "200"}
    if other:
        notes.append("other answers: " + ", ".join(f"{k} x{v}" for k, v in other.items()))
    return "; ".join(notes)


# ---- main --------------------------------------------------------------------------------------


def load_texts(limit: int = 400) -> list[str]:
    with DATA.open(newline="", encoding="utf-8") as handle:
        return [row["tweet"] for _, row in zip(range(limit), csv.DictReader(handle), strict=False)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path(os.environ.get("STORE", "local/store")))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--traffic-s", type=float, default=20.0, help="traffic of c, d, f")
    parser.add_argument("--lead-s", type=float, default=5.0, help="traffic before a fault")
    parser.add_argument("--tail-s", type=float, default=10.0, help="traffic after a fault")
    parser.add_argument("--down-s", type=float, default=30.0, help="a: BigQuery down")
    parser.add_argument("--slow-s", type=float, default=30.0, help="b, e: backend slow")
    parser.add_argument("--delay-s", type=float, default=12.0, help="b, e: hold per call")
    parser.add_argument("--freeze-s", type=float, default=5.0, help="c: SIGSTOP before SIGTERM")
    parser.add_argument("--kill-after-s", type=float, default=10.0, help="SIGTERM -> SIGKILL")
    parser.add_argument("--corrupt-s", type=float, default=15.0, help="e: store serves corrupt")
    parser.add_argument("--refresh-s", type=float, default=2.0, help="e, f: MODEL_REFRESH_SECONDS")
    parser.add_argument(
        "--store-stall-s", type=float, default=30.0, help="g: dead-letter store hold per call"
    )
    parser.add_argument(
        "--overflow-buffer-rows", type=int, default=200, help="h: PREDICTION_LOG_BUFFER_ROWS"
    )
    parser.add_argument("--block-s", type=float, default=10.0, help="i: stdout blocked")
    parser.add_argument(
        "--canary-fraction", type=float, default=0.25, help="j: the canary's share of requests"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "chaos")
    parser.add_argument("--flags", default="", help=argparse.SUPPRESS)  # for the report's command
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    if not (args.store / "models" / "production.json").is_file():
        parser.error(f"no production bundle in {args.store}: run `make run` first")

    started = _now()
    args.load_at_start = [round(x, 2) for x in os.getloadavg()]
    args.commit = _commit()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp_name:
        tmp = Path(tmp_name)
        emulator = BigQueryEmulator(tmp / "bqemulator" / "data")
        emulator.start()
        os.environ["BIGQUERY_EMULATOR_HOST"] = emulator.host  # this process: straight to it
        try:
            ctx = Context(
                args=args,
                emulator=emulator,
                bq_proxy=FaultProxy(emulator.port),
                store=production_only(args.store, tmp / "store"),
                texts=load_texts(),
                tmp=tmp,
            )
            for name in names:
                print(f"== {name}: {TITLES[name]}", flush=True)
                SCENARIOS[name](ctx)
        finally:
            for served in _STARTED:
                _signal_all(served, signal.SIGKILL)
            emulator.stop()
    write_report(args.out, args, ctx.results, _now() - started)
    print(f"wrote {args.out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
