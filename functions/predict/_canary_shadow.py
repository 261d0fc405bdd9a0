"""Canary and shadow: the pointer's candidate version, loaded and served beside production.

The candidate is read from the same pointer read as production's hot reload (main.py hands
`production_version` and `load_production` to the ModelHolder), so it is picked up at the same
MODEL_REFRESH_SECONDS checks, and at the first load. A background thread fetches, verifies and
loads its bundle and switches it in with one reference assignment; a failed load is logged and
retried at the next check while production serves on. When the candidate is promoted, the
loaded model is handed to production as it is: no second copy, no second load.

Canary: each request is answered by the candidate with probability `fraction`, drawn on the
server (the operating system's random source) for that request. Nothing the caller sends takes
part: a draw from a caller's X-Request-Id would let a caller who saw which version answered an id
send that id again to pick the version, and so choose to be served, or never be served, by the
canary. A retried request may therefore get the other version; the answer and its log rows name
the version that answered.

Shadow: after the live answer is computed and logged, the request's texts are queued for one
worker thread that scores them with the candidate and logs the rows with shadow = TRUE; they are
never returned. The worker starts a request's shadow scoring only once no live request has been
in flight for SHADOW_QUIET_S, and runs at the lowest CPU priority (nice 19; with one intra-op
thread onnxruntime runs on that thread). Low priority alone was not enough: on 2 vCPUs shared
with other work it still cost the live answers about 60% on p50 (it also competes for the GIL).
The queue is bounded: when the worker is behind (a steadily busy instance), new shadow work is
dropped and counted rather than held, so live requests never wait for it and its memory stays
bounded; the shadow rows' traffic_share in candidate_comparison shows how much was scored. On
Cloud Run the worker needs CPU outside requests (instance-based billing) to keep up.
Session threads: a canary uses ORT_INTRA_OP_THREADS like production and runs on the request
threads (THREADS bounds both versions together); a shadow uses one thread on its own worker.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import queue
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _config import ServeConfig
from _service import EXIT_JOIN_S, _load_model, prediction_log_rows, stop_at_exit

from production_pointer import CANARY, SHADOW, Candidate
from serving_core.bundle import BundleError, PointerReader, bundle_beside_pointer, is_pointer
from serving_core.model import Model

log = logging.getLogger("predict")

# Requests waiting for the shadow worker. Each holds at most MAX_BODY_BYTES of text (1 MiB by
# default), so the queue adds at most ~16 MiB; past it shadow work is dropped.
SHADOW_QUEUE_REQUESTS = 16
SHADOW_NICE = 19  # the lowest priority: live request threads always come first
SHADOW_QUIET_S = 0.02  # no live request for this long before a shadow scoring starts
# A request runs on the solo session (every core) only if no two live requests overlapped for this
# long: at steady concurrency there is always a moment when one request is alone in the app.
SOLO_QUIET_S = 0.2
_DROP_LOG_EVERY = 1000  # a warning on the first drop and every this many after it

Rows = list[dict[str, Any]]


_CANARY_DRAW = random.SystemRandom()


def canary_draw() -> float:
    """Where a request falls in [0, 1): the canary answers it when this is below its fraction.
    Drawn on the server for each request, from nothing the caller sent."""
    return _CANARY_DRAW.random()


@dataclass(frozen=True)
class ActiveCandidate:
    model: Model
    mode: str
    fraction: float | None
    intra_op_threads: int


@dataclass(frozen=True)
class ShadowJob:
    model: Model
    request_id: str
    trace_id: str | None
    texts: list[str]


class ShadowWorker:
    """One thread scoring queued requests with the shadow candidate, off the request path."""

    def __init__(
        self,
        log_rows: Callable[[Rows], None],
        max_requests: int,
        wait_turn: Callable[[], None] | None = None,
    ) -> None:
        self._log_rows = log_rows
        self._wait_turn = wait_turn  # returns when the live requests leave room; None: at once
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=max_requests)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self.counts = {"scored": 0, "dropped": 0, "failed": 0}

    def submit(self, job: ShadowJob) -> bool:
        """Queue the job; False (and counted) when the queue is full. Never blocks."""
        self._ensure_started()
        try:
            self._queue.put_nowait(job)
            return True
        except queue.Full:
            dropped = self._count("dropped")
            if dropped % _DROP_LOG_EVERY == 1:
                log.warning(
                    "shadow worker behind: dropped shadow scoring of request %s (%d dropped so "
                    "far); live answers are not affected",
                    job.request_id,
                    dropped,
                )
            return False

    def queued(self) -> int:
        return self._queue.qsize()

    def _count(self, key: str) -> int:
        with self._lock:
            self.counts[key] += 1
            return self.counts[key]

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                # Started in the serving process (after functions-framework's fork); stopped
                # and joined at exit (_service.stop_at_exit).
                self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
                self._thread.start()
                stop_at_exit(self.close)

    def _run(self) -> None:
        _lower_priority()
        while (job := self._queue.get()) is not None:
            if self._closing.is_set():
                continue  # stopping: the queued work is dropped, not scored
            if self._wait_turn is not None:
                self._wait_turn()
            try:
                started = time.perf_counter()
                predictions = job.model.predict(job.texts)
                latency_ms = (time.perf_counter() - started) * 1000
                rows = prediction_log_rows(
                    job.request_id,
                    job.trace_id,
                    job.texts,
                    predictions,
                    job.model,
                    latency_ms,
                    cold_start=False,
                    shadow=True,
                )
                self._log_rows(rows)
                self._count("scored")
            except Exception:
                self._count("failed")
                log.exception("shadow scoring of request %s failed", job.request_id)

    def close(self, timeout_s: float = EXIT_JOIN_S, finish_queued: bool = False) -> None:
        """Stop, after the scoring in progress (and with `finish_queued` the queued jobs):
        at exit, and in tests."""
        atexit.unregister(self.close)
        if not finish_queued:
            self._closing.set()
        if self._thread is not None and self._thread.is_alive():
            # Full: still scoring one job; the join below waits for what is left of it.
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout_s)
            self._thread.join(timeout=timeout_s)


def _lower_priority() -> None:
    # On Linux a thread has its own nice value (setpriority on its thread id).
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SHADOW_NICE)
    except (AttributeError, OSError) as exc:
        log.warning("shadow worker runs at normal priority: %s", exc)


class Rollout:
    """The candidate beside production: which version answers a request, and the shadow."""

    def __init__(
        self,
        config: ServeConfig,
        log_rows: Callable[[Rows], None],
        loader: Callable[[ServeConfig], Model] = _load_model,
        shadow_queue_requests: int = SHADOW_QUEUE_REQUESTS,
    ) -> None:
        self.config = config
        self.log_rows = log_rows  # looked up at each use, so tests can swap it
        self.watching = is_pointer(config.model_uri)
        self._reader = PointerReader(config.model_uri) if self.watching else None
        self._loader = loader
        self._active: ActiveCandidate | None = None
        self._promoted: ActiveCandidate | None = None  # promoted, until production takes it
        self._wanted: Candidate | None = None
        self._production_version: str | None = None
        self.load_error: str | None = None  # for the log only, never for callers
        self.load_error_reason = "internal"  # BundleError.reason of the last failed load
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._syncer: threading.Thread | None = None
        self._in_flight = 0
        self._live_started = 0
        self._overlapped_at = -math.inf  # time.monotonic() when two live requests last overlapped
        self._idle = threading.Event()
        self._idle.set()
        self.shadow_worker = ShadowWorker(
            lambda rows: self.log_rows(rows), shadow_queue_requests, self.wait_until_quiet
        )

    @property
    def candidate(self) -> ActiveCandidate | None:
        """The loaded candidate, if any."""
        return self._active

    # ---- hooks for the ModelHolder: the one pointer read per check -----------------------------

    def production_version(self) -> str:
        """Read the pointer: note its candidate, return the production version."""
        assert self._reader is not None
        pointer = self._reader.pointer()
        self._observe(pointer.version, pointer.candidate)
        return pointer.version

    def load_production(self, config: ServeConfig) -> Model:
        """Production's loader: the promoted candidate's model when it is already loaded. The
        candidate is noted only once production is loaded, so a cold start loads production
        first instead of sharing the CPUs with the candidate's load."""
        if self._reader is None:
            return self._loader(config)
        pointer = self._reader.pointer()
        promoted = next(
            (
                c
                for c in (self._active, self._promoted)
                if c is not None
                and c.model.version == pointer.version
                and c.intra_op_threads == config.ort_intra_op_threads
            ),
            None,
        )
        if promoted is not None:
            log.info("production is now the loaded candidate %s: no second load", pointer.version)
            model = promoted.model
            model.start_solo_session(config.solo_ort_threads)  # a candidate has none of its own
        else:
            model = self._loader(config)
        unused, self._promoted = self._promoted, None
        self._observe(pointer.version, pointer.candidate)
        if unused is not None and unused is not promoted:
            # Promoted, then the pointer moved back before production took it (a rollback):
            # nothing will serve it, and its gs:// copy would stay on the in-memory disk.
            wanted = pointer.candidate.version if pointer.candidate else None
            if unused.model.version != wanted:
                log.info("candidate %s promoted and rolled back: dropped", unused.model.version)
                self._discard_cached(unused.model)
        return model

    # ---- per request ---------------------------------------------------------------------------

    @contextmanager
    def live_request(self) -> Iterator[None]:
        """Around a request's live work: the shadow worker waits while any is in flight."""
        with self._lock:
            self._in_flight += 1
            self._live_started += 1
            self._idle.clear()
            if self._in_flight > 1:
                self._overlapped_at = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

    def alone(self) -> bool:
        """True when the calling request is the only live one in flight and none overlapped for
        SOLO_QUIET_S: under concurrent traffic a request that starts in another's gap between
        requests stays on one thread too, instead of taking both cores from it."""
        return self._in_flight == 1 and time.monotonic() - self._overlapped_at > SOLO_QUIET_S

    def wait_until_quiet(self, quiet_s: float = SHADOW_QUIET_S) -> None:
        """Return once no live request has been in flight for `quiet_s`: a gap between requests
        of a busy instance (a few ms) is no room for shadow work that would delay the next."""
        while True:
            self._idle.wait()
            started = self._live_started
            time.sleep(quiet_s)
            if self._idle.is_set() and self._live_started == started:
                return

    def answering(self, production: Model) -> Model:
        """The model that answers this request: the canary for its share, else production."""
        active = self._active
        if active is None or active.mode != CANARY or active.fraction is None:
            return production
        if active.model.version == production.version:
            return production
        if canary_draw() < active.fraction:
            return active.model
        return production

    def shadow(
        self, answered_by: Model, request_id: str, trace_id: str | None, texts: Sequence[str]
    ) -> None:
        """Queue the request's texts for the shadow candidate, if one is loaded."""
        active = self._active
        if active is None or active.mode != SHADOW or active.model.version == answered_by.version:
            return
        self.shadow_worker.submit(ShadowJob(active.model, request_id, trace_id, list(texts)))

    def describe(self) -> dict[str, Any] | None:
        """The candidate for the health answer; None when the pointer names none."""
        wanted, active = self._wanted, self._active
        if wanted is not None:
            spec = wanted
        elif active is not None:  # dropped from the pointer, not yet unloaded
            spec = Candidate(active.model.version, active.mode, active.fraction)
        else:
            return None
        loaded = active is not None and active.model.version == spec.version
        body: dict[str, Any] = {
            "version": spec.version,
            "mode": spec.mode,
            "fraction": spec.fraction,
            "loaded": loaded,
        }
        if self.load_error:
            # The caller gets the kind of failure only; the error itself (store paths, bucket
            # names) is in the instance's log.
            body["error"] = {
                "code": "candidate_unavailable",
                "message": f"the candidate bundle could not be loaded ({self.load_error_reason}); "
                "production serves alone and the load is retried at the next pointer check; "
                "details in the instance's log",
            }
        if spec.mode == SHADOW:
            body["shadow"] = {**self.shadow_worker.counts, "queued": self.shadow_worker.queued()}
        return body

    # ---- loading the candidate -----------------------------------------------------------------

    def _observe(self, production_version: str, candidate: Candidate | None) -> None:
        with self._lock:
            self._production_version = production_version
            self._wanted = candidate
            if self._syncer is None:
                self._syncer = threading.Thread(
                    target=self._sync_loop, name="candidate-loader", daemon=True
                )
                self._syncer.start()
                stop_at_exit(self.close)
        self._wake.set()

    def _sync_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync()
            except Exception:  # whatever happens, production serves on
                log.exception("candidate check failed")

    def sync(self) -> None:
        """Bring the loaded candidate in line with the pointer's (load, update or drop it)."""
        wanted, active = self._wanted, self._active
        if wanted is not None and wanted.version == self._production_version:
            wanted = None  # a candidate that is production has nothing to be compared with
        if wanted is None:
            self.load_error = None
            if active is not None:
                self._active = None
                if active.model.version == self._production_version:
                    # Promoted: kept for production's loader, which may not have run yet.
                    self._promoted = active
                    log.info("candidate %s promoted: handed to production", active.model.version)
                else:
                    log.info("candidate %s (%s) dropped", active.model.version, active.mode)
                    self._discard_cached(active.model)
            return
        threads = self.config.ort_intra_op_threads if wanted.mode == CANARY else 1
        if (
            active is not None
            and active.model.version == wanted.version
            and active.intra_op_threads == threads
        ):
            if (active.mode, active.fraction) != (wanted.mode, wanted.fraction):
                self._active = replace(active, mode=wanted.mode, fraction=wanted.fraction)
                log.info("candidate %s now %s", wanted.version, _describe(wanted))
            return
        started = time.perf_counter()
        config = replace(
            self.config,
            model_uri=bundle_beside_pointer(self.config.model_uri, wanted.version),
            ort_intra_op_threads=threads,
            solo_ort_threads=1,  # production's instance keeps the cores for production
        )
        try:
            model = self._loader(config)
        except Exception as exc:
            self.load_error = str(exc)
            self.load_error_reason = exc.reason if isinstance(exc, BundleError) else "internal"
            log.error(
                "candidate %s could not be loaded: %s; production serves alone, next try at "
                "the next pointer check",
                wanted.version,
                exc if isinstance(exc, BundleError) else repr(exc),
                exc_info=not isinstance(exc, BundleError),
            )
            return
        self.load_error = None
        self._active = ActiveCandidate(model, wanted.mode, wanted.fraction, threads)
        log.info(
            "candidate %s loaded beside production %s in %.0f ms: %s",
            model.version,
            self._production_version,
            (time.perf_counter() - started) * 1000,
            _describe(wanted),
        )
        if active is not None and active.model.version != model.version:
            self._discard_cached(active.model)

    def _discard_cached(self, model: Model) -> None:
        # As for production's reload: a gs:// bundle's copy lies on Cloud Run's in-memory disk.
        # Never production's own copy (a dropped candidate that was just promoted).
        directory = model.bundle_dir
        if directory is None or model.version == self._production_version:
            return
        cache = Path(self.config.bundle_cache_dir).resolve()
        if cache in Path(directory).resolve().parents:
            shutil.rmtree(directory, ignore_errors=True)

    def close(self) -> None:
        """Stop the threads and wait for a load or scoring in progress (at exit, and in tests)."""
        atexit.unregister(self.close)
        self._stop.set()
        self._wake.set()
        if self._syncer is not None:
            self._syncer.join(timeout=EXIT_JOIN_S)
        self.shadow_worker.close()


def _describe(candidate: Candidate) -> str:
    if candidate.mode == CANARY:
        return f"canary answering {candidate.fraction:.1%} of requests"
    return "shadow scoring every request, logged only"
