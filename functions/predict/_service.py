"""Process-wide state behind the HTTP handler: the lazily loaded model, the prediction-log hook."""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _config import ServeConfig
from _errors import ModelUnavailable

from prediction_log.settings import LogSettings
from serving_core.bundle import BundleError, PointerReader, fetch_bundle, is_pointer
from serving_core.model import Model, Prediction

log = logging.getLogger("predict")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: Cloud Logging reads ``severity`` and ``message`` from it."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return json.dumps({"severity": record.levelname, "logger": record.name, "message": message})


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (servers and test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging() -> None:
    # functions-framework leaves the root logger unconfigured (WARNING, no handler); our own
    # loggers (and the serving core's, which fetches the bundle) get a handler so that load
    # events at INFO reach the instance's log.
    for logger in (log, logging.getLogger("serving_core")):
        if not logger.handlers:
            handler = _CurrentStderrHandler()
            handler.setFormatter(JsonLogFormatter())
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


class ModelHolder:
    """Loads the model on first use; after a failure, retries on a later request; keeps it fresh.

    A failed load is remembered for ``retry_after_s`` so that a broken bundle is not fetched
    again by every request of a burst; requests in that window get 503 at once.

    When MODEL_URI is a production pointer, the first load also starts a refresher thread (in the
    serving process, after functions-framework's fork) that reads the pointer every
    ``refresh_interval_s``. On a new version it fetches, verifies and loads it off the request path,
    then switches with one reference assignment: a request takes the model once (``get``) and uses
    that object for all its texts, its answer and its log rows, so no response mixes versions. A
    failed reload logs an error and keeps serving the loaded version. The same version is then
    retried after a delay that doubles with each failure, from ``refresh_interval_s`` up to
    ``reload_backoff_max_s``: a bundle that stays corrupt, or a store that stays slow, is not
    downloaded again on every check. The pointer itself is still read on every check, so a new
    promotion (or a rollback) is tried at once.
    """

    def __init__(
        self,
        config: ServeConfig,
        retry_after_s: float = 2.0,
        loader: Callable[[ServeConfig], Model] | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_interval_s: float = 0.0,
        pointer_version: Callable[[], str] | None = None,
        reload_backoff_max_s: float = 600.0,
    ) -> None:
        self.config = config
        self.retry_after_s = retry_after_s
        self.refresh_interval_s = refresh_interval_s
        self.reload_backoff_max_s = reload_backoff_max_s
        self._loader = loader or _load_model
        self._clock = clock
        self._pointer_version = pointer_version
        self._lock = threading.Lock()
        self._model: Model | None = None
        self._error: str | None = None
        self._error_reason: str | None = None
        self._failed_at: float | None = None
        self._reload_error: str | None = None
        # The version the last hot reload failed on, how often in a row, and when to try it again.
        self._reload_failed_version: str | None = None
        self._reload_failures = 0
        self._reload_retry_at = 0.0
        self._refresher: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def model(self) -> Model | None:
        return self._model

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def error_reason(self) -> str | None:
        """Why the last load failed, for callers: BundleError.reason, else ``internal``."""
        return self._error_reason

    @property
    def reload_failures(self) -> int:
        """Failed hot reloads in a row of the version the pointer names (0 after a good check)."""
        return self._reload_failures

    @property
    def reload_error(self) -> str | None:
        """Why the last hot reload failed (None after a good check)."""
        return self._reload_error

    def get(self) -> tuple[Model, bool]:
        """The model and whether this call loaded it (the request is a cold start)."""
        model = self._model
        if model is not None:
            return model, False
        with self._lock:
            if self._model is not None:
                return self._model, False
            now = self._clock()
            if self._failed_at is not None and now - self._failed_at < self.retry_after_s:
                raise ModelUnavailable("the model bundle could not be loaded; retry later")
            started = time.perf_counter()
            try:
                model = self._loader(self.config)
            except Exception as exc:
                self._error = str(exc)
                self._error_reason = exc.reason if isinstance(exc, BundleError) else "internal"
                self._failed_at = self._clock()
                detail = exc if isinstance(exc, BundleError) else repr(exc)
                log.error(
                    "model bundle unavailable (MODEL_URI=%s): %s; answering 503, retrying on a "
                    "request after %.1f s",
                    self.config.model_uri,
                    detail,
                    self.retry_after_s,
                    exc_info=not isinstance(exc, BundleError),
                )
                raise ModelUnavailable(
                    "the model bundle could not be loaded; retry later"
                ) from None
            self._model, self._error, self._error_reason, self._failed_at = model, None, None, None
            log.info(
                "loaded model %s from %s in %.0f ms",
                model.version,
                self.config.model_uri,
                (time.perf_counter() - started) * 1000,
            )
            self._start_refresher()
            return model, True

    # ---- hot reload ----------------------------------------------------------------------------

    def _start_refresher(self) -> None:
        interval = self.refresh_interval_s
        if self._refresher is not None or not (0 < interval < math.inf):
            return
        if self._pointer_version is None:
            if not is_pointer(self.config.model_uri):
                return  # a fixed bundle never changes: nothing to watch
            self._pointer_version = PointerReader(self.config.model_uri).version
        self._refresher = threading.Thread(
            target=self._refresh_loop, name="model-refresher", daemon=True
        )
        self._refresher.start()
        stop_at_exit(self.close)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_interval_s):
            self.refresh()

    def refresh(self) -> bool:
        """One check: load and switch to the version the pointer names if it is not the one
        served. True when it switched. Never raises: whatever happens, serving goes on."""
        current = self._model
        if current is None or self._pointer_version is None:
            return False
        started = time.perf_counter()
        wanted: str | None = None
        try:
            wanted = self._pointer_version()
            if wanted == current.version:
                self._reload_ok()
                return False
            if wanted == self._reload_failed_version and self._clock() < self._reload_retry_at:
                return False  # backing off from this version; a different one is tried at once
            model = self._loader(self.config)
        except Exception as exc:
            self._reload_failed(exc, current.version, wanted)
            return False
        self._reload_ok()
        if model.version == current.version:  # the pointer moved back while we loaded
            return False
        self._model = model  # the switch: one reference, so a request sees one version or the other
        log.info(
            "switched model %s -> %s (loaded in the background in %.0f ms)",
            current.version,
            model.version,
            (time.perf_counter() - started) * 1000,
        )
        self._discard_cached(current, model)
        return True

    def _reload_ok(self) -> None:
        self._reload_error = None
        self._reload_failed_version = None
        self._reload_failures = 0

    def _reload_failed(self, exc: Exception, serving: str, wanted: str | None) -> None:
        self._reload_error = str(exc)
        if wanted is None:  # the pointer could not be read: the next check reads it again
            delay = self.refresh_interval_s
        else:
            if wanted != self._reload_failed_version:
                self._reload_failed_version, self._reload_failures = wanted, 0
            self._reload_failures += 1
            delay = min(
                self.refresh_interval_s * 2 ** (self._reload_failures - 1),
                max(self.reload_backoff_max_s, self.refresh_interval_s),
            )
            self._reload_retry_at = self._clock() + delay
        log.error(
            "hot reload failed (MODEL_URI=%s, version %s, %d in a row): %s; still serving %s, "
            "next try in %.0f s",
            self.config.model_uri,
            wanted or "unknown",
            self._reload_failures,
            exc if isinstance(exc, BundleError) else repr(exc),
            serving,
            delay,
            exc_info=not isinstance(exc, BundleError),
        )

    def _discard_cached(self, old: Model, new: Model) -> None:
        # A gs:// bundle is a copy in BUNDLE_CACHE_DIR, on Cloud Run an in-memory disk: without
        # this every promotion would leave its predecessor's files taking memory. The old session
        # and tokenizer are already in memory, so in-flight requests on it need no files.
        old_dir, new_dir = getattr(old, "bundle_dir", None), getattr(new, "bundle_dir", None)
        cache = Path(self.config.bundle_cache_dir).resolve()
        if old_dir is None or old_dir == new_dir or cache not in Path(old_dir).resolve().parents:
            return
        shutil.rmtree(old_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop the refresher and wait for a reload in progress (at exit, and in tests)."""
        atexit.unregister(self.close)
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=EXIT_JOIN_S)


# How long an exiting process waits for a background load to finish. Cloud Run sends SIGKILL
# 10 s after SIGTERM; a load of the int8 MiniLM bundle takes about a second.
EXIT_JOIN_S = 10.0


def stop_at_exit(close: Callable[[], None]) -> None:
    """Run `close` (stop a background thread, join it) when the interpreter exits.

    The hot-reload refresher, the candidate loader and the shadow worker can be inside
    onnxruntime (building a session, scoring) at any moment. An interpreter that exits while a
    thread is in there runs onnxruntime's static destructors under it and aborts (SIGABRT), so the
    exit must wait for them. They stay daemon threads stopped and joined by this atexit hook:
    the interpreter joins non-daemon threads before it runs atexit hooks, so a non-daemon loop
    would never be told to stop and would hold the exit forever."""
    atexit.register(close)


def _load_model(config: ServeConfig) -> Model:
    started = time.perf_counter()
    bundle = fetch_bundle(config.model_uri, config.bundle_cache_dir)
    log.info(
        "bundle %s fetched and verified from %s in %.0f ms",
        bundle.version,
        bundle.source,
        (time.perf_counter() - started) * 1000,
    )
    model = Model.load(
        bundle,
        intra_op_threads=config.ort_intra_op_threads,
        max_batch_size=config.max_batch_size,
        max_batch_tokens=config.max_batch_tokens,
        allow_spinning=config.ort_allow_spinning,
        solo_threads=config.solo_ort_threads,
    )
    model.bundle_dir = bundle.directory
    return model


class PredictionLogHook:
    """Hands each request's rows to the prediction logger (prediction_log.logger.get_logger()).

    PREDICTION_LOG=none skips the logger entirely. The logger is created on first use, inside the
    serving process, because its flush thread would not survive functions-framework's fork. Logging
    must never fail a prediction: errors are logged here and the prediction is still answered.
    """

    def __init__(self, settings: LogSettings) -> None:
        self.settings = settings
        self.enabled = settings.sink_uri.strip().lower() != "none"
        self._logger: Any = None
        self._lock = threading.Lock()

    def install_shutdown_flush(self) -> bool:
        """Flush buffered rows on SIGTERM. Must run on the main thread, so main.py calls it at
        import; get_logger() is first called from a request thread, where it cannot be done."""
        if not self.enabled:
            return False
        try:
            from prediction_log.logger import install_sigterm_handler
        except ImportError:
            return False
        return bool(install_sigterm_handler())

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        try:
            logger = self._logger or self._create()
            if logger is not None:
                logger.log(rows)
        except Exception:
            log.exception("prediction log hook failed; %d rows not handed over", len(rows))

    def _create(self) -> Any:
        with self._lock:
            if self._logger is None and self.enabled:
                try:
                    from prediction_log.logger import get_logger
                except ImportError:
                    log.error("prediction_log package missing: predictions are NOT being logged")
                    self.enabled = False
                    return None
                self._logger = get_logger(self.settings)
            return self._logger


def prediction_log_rows(
    request_id: str,
    trace_id: str | None,
    texts: Sequence[str],
    predictions: Sequence[Prediction],
    model: Model,
    latency_ms: float,
    cold_start: bool,
    shadow: bool = False,
) -> list[dict[str, Any]]:
    """Rows shaped by the prediction_log package's schema file, one per instance (text dropped by
    the logger unless LOG_TEXT is on). Each row gets its own key here, on the server: request_id and
    trace_id are whatever the caller sent, so they are kept as plain columns only. `shadow`
    marks a shadow candidate's answers, which the caller never got."""
    ts = datetime.now(UTC).isoformat()
    return [
        {
            "request_id": request_id,
            "instance_index": index,
            "ts": ts,
            "model_version": model.version,
            "label": prediction.label,
            "fake_probability": prediction.probabilities[model.positive_label],
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "char_count": len(text),
            "token_count": prediction.token_count,
            "truncated": prediction.truncated,
            "latency_ms": latency_ms,
            "cold_start": cold_start,
            "ood_score": prediction.ood_score,
            "in_domain": prediction.in_domain,
            "text": text,
            "row_id": uuid.uuid4().hex,
            "trace_id": trace_id,
            "nonfinite_columns": None,
            "shadow": shadow,
        }
        for index, (text, prediction) in enumerate(zip(texts, predictions, strict=True))
    ]
