"""Settings of the function, read from the environment once per process.

Order (job_config.read, the one reader of every deployable's settings): an explicit value, then
the environment variable, then the documented default; the function has no command line, so
here it is the variable, else the default. A blank variable counts as unset.
The prediction log's settings (PREDICTION_LOG, DEAD_LETTER_URI, LOG_TEXT, PREDICTION_LOG_*) are
read here too, by prediction_log.settings with the same reader, and handed to the logger, so a
bad value fails the start like any other setting.
Defaults for the thread counts were measured on a 2-vCPU machine (see benchmarks/bench_serve.py
and reports/bench_serve.md); set both together when the instance size changes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from job_config import env_value, non_negative_float, parse_bool, positive_int, read
from prediction_log.settings import DEFAULT_DEAD_LETTER_URI, DEFAULT_PREDICTION_LOG, LogSettings
from serving_core.cpus import available_cpus

# Measured on 2 vCPUs (reports/bench_serve.md, thread sweep): requests in parallel, each on one
# onnxruntime thread, beat one request on both cores at concurrency 1 and 16 (that lost badly
# whenever anything else wanted a core). 4 threads gave more throughput in a noisy sweep, but 2
# bound the memory of concurrent long-text batches: peak RSS 457 MiB vs 606 MiB with 4, measured
# with 4 concurrent requests of 16 long texts (a 512 MiB instance).
DEFAULT_THREADS = 2
DEFAULT_ORT_INTRA_OP_THREADS = 1
# A request that is alone in flight runs on a second session with SOLO_ORT_THREADS threads, whose
# workers busy-wait between the graph's parallel sections: measured in-process on 2 vCPUs, 4.2 ms
# p50 against 6.3 ms on one thread (5.7 ms on two threads without the busy-waiting), same logits.
# Costs ~29 MiB PSS for the second session; 1 turns it off. Unset, it is the CPUs the process may
# use (serving_core.cpus): two spinning threads on one vCPU take turns on it and lose to one
# thread (experiments/serving_profile.md, one vCPU), so the default never asks for more threads
# than there are CPUs.

DEFAULTS: dict[str, str] = {
    "MODEL_URI": "local/store/models/production.json",
    "BUNDLE_CACHE_DIR": str(Path(tempfile.gettempdir()) / "fakenews-bundles"),
    # Local default: the embedded DuckDB file. Terraform sets stdout in production.
    "PREDICTION_LOG": DEFAULT_PREDICTION_LOG,
    "DEAD_LETTER_URI": DEFAULT_DEAD_LETTER_URI,
    # Bounds of the background sink's buffer (bq://): rows past either one go to the
    # dead letter from the request thread rather than grow the instance until it is killed.
    # 10000 rows are about 15 MiB of Python objects; 8 MiB bounds rows that carry texts.
    "PREDICTION_LOG_BUFFER_ROWS": str(LogSettings().buffer_rows),
    "PREDICTION_LOG_BUFFER_BYTES": str(LogSettings().buffer_bytes),
    "MAX_INSTANCES": "64",
    "MAX_TEXT_CHARS": "20000",
    "MAX_BODY_BYTES": str(1024 * 1024),
    "MAX_BATCH_SIZE": "32",
    # Padded tokens per onnxruntime call: bounds a call's activation memory (~12 MiB per 512-token
    # text); batching wider gains nothing on 2 vCPUs.
    "MAX_BATCH_TOKENS": "1024",
    "ORT_INTRA_OP_THREADS": str(DEFAULT_ORT_INTRA_OP_THREADS),
    "THREADS": str(DEFAULT_THREADS),
    # Busy-waiting onnxruntime workers (>1 intra-op thread) steal the core a concurrent request or
    # the log flusher needs: measured 2-3x slower p50 with spinning on a busy 2-vCPU machine.
    "ORT_ALLOW_SPINNING": "0",
    # After a failed load, requests within this many seconds get 503 at once instead of refetching.
    "LOAD_RETRY_SECONDS": "2",
    # How often a warm instance reads the production pointer and, on a new version, loads it in the
    # background and switches: the bound on how long it serves a demoted model (plus the load).
    # One small object read per check; 0 turns it off (the pointer is then read at load only).
    "MODEL_REFRESH_SECONDS": "30",
    # A version whose hot reload failed (corrupt bundle, store too slow) is retried after
    # MODEL_REFRESH_SECONDS, then twice as long after each further failure, up to this.
    "MODEL_RELOAD_BACKOFF_MAX_SECONDS": "600",
}


T = TypeVar("T")


class ConfigError(ValueError):
    """A setting has a value the function cannot use; raised at startup so the deploy fails."""


@dataclass(frozen=True)
class ServeConfig:
    model_uri: str
    bundle_cache_dir: Path
    log: LogSettings
    max_instances: int
    max_text_chars: int
    max_body_bytes: int
    max_batch_size: int
    max_batch_tokens: int
    ort_intra_op_threads: int
    solo_ort_threads: int
    threads: int
    ort_allow_spinning: bool
    load_retry_seconds: float
    model_refresh_seconds: float
    model_reload_backoff_max_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServeConfig:
        env = os.environ if env is None else env

        def setting(name: str, parse: Callable[[str], T], default: T | None = None) -> T:
            fallback = parse(DEFAULTS[name]) if default is None else default
            try:
                return read(name, parse, fallback, env=env)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None

        try:
            log = LogSettings.from_env(env, strict=True)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

        return cls(
            model_uri=setting("MODEL_URI", str),
            bundle_cache_dir=Path(setting("BUNDLE_CACHE_DIR", str)),
            log=log,
            max_instances=setting("MAX_INSTANCES", positive_int),
            max_text_chars=setting("MAX_TEXT_CHARS", positive_int),
            max_body_bytes=setting("MAX_BODY_BYTES", positive_int),
            max_batch_size=setting("MAX_BATCH_SIZE", positive_int),
            max_batch_tokens=setting("MAX_BATCH_TOKENS", positive_int),
            ort_intra_op_threads=setting("ORT_INTRA_OP_THREADS", positive_int),
            solo_ort_threads=setting("SOLO_ORT_THREADS", positive_int, available_cpus()),
            threads=setting("THREADS", positive_int),
            ort_allow_spinning=setting("ORT_ALLOW_SPINNING", parse_bool),
            load_retry_seconds=setting("LOAD_RETRY_SECONDS", non_negative_float),
            model_refresh_seconds=setting("MODEL_REFRESH_SECONDS", non_negative_float),
            model_reload_backoff_max_seconds=setting(
                "MODEL_RELOAD_BACKOFF_MAX_SECONDS", non_negative_float
            ),
        )


def apply_server_defaults(env: dict[str, str] | None = None) -> None:
    """Give functions-framework our measured THREADS default unless the deployer set one.

    functions-framework reads THREADS when it builds the gunicorn server, which happens after it
    imports main.py, so setting the default at import time is early enough. Its own default
    (4 x CPUs) oversubscribes a 2-vCPU instance once onnxruntime uses both cores per request.
    """
    env = os.environ if env is None else env
    if env_value("THREADS", env) is None:
        env["THREADS"] = DEFAULTS["THREADS"]
