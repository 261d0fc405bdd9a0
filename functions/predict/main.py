"""Cloud Function (functions-framework, HTTP): fake/real predictions for COVID news posts.

POST {"instances": [{"text": ...}, ...]} or {"text": ...} -> predictions; GET -> readiness +
metadata (200 only once the model is loaded and serving).
The protocol is described in openapi.yaml; settings in _config.py; the model in the serving_core
package (packages/serving_core/, shared with the batch scoring job). Nothing heavy happens at
import: the bundle is fetched and the onnxruntime session created on the first request (GET or
POST), in the serving process (see serving_core/model.py for why).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import flask
import functions_framework
from _canary_shadow import Rollout
from _config import ServeConfig, apply_server_defaults
from _errors import ApiError, MethodNotAllowed, ModelUnavailable, PayloadTooLarge, error_body
from _service import ModelHolder, PredictionLogHook, configure_logging, prediction_log_rows
from _validation import Limits, check_content_type, parse_texts

apply_server_defaults()
configure_logging()
CONFIG = ServeConfig.from_env()
LIMITS = Limits(
    max_instances=CONFIG.max_instances,
    max_text_chars=CONFIG.max_text_chars,
    max_body_bytes=CONFIG.max_body_bytes,
)
PREDICTION_LOG = PredictionLogHook(CONFIG.log)
# The pointer's candidate (canary or shadow) rides on production's pointer reads:
# _canary_shadow.py.
ROLLOUT = Rollout(CONFIG, PREDICTION_LOG)
MODEL = ModelHolder(
    CONFIG,
    retry_after_s=CONFIG.load_retry_seconds,
    loader=ROLLOUT.load_production,
    refresh_interval_s=CONFIG.model_refresh_seconds,
    pointer_version=ROLLOUT.production_version if ROLLOUT.watching else None,
    reload_backoff_max_s=CONFIG.model_reload_backoff_max_seconds,
)
# Here, at import, because signal handlers can only be set on the main thread and the logger is
# first used from a request thread. A server that installs its own handler afterwards (gunicorn
# does, in each worker) replaces it; its workers then exit through sys.exit and the logger's
# atexit hook flushes instead.
SIGTERM_FLUSH_INSTALLED = PREDICTION_LOG.install_shutdown_flush()
ALLOWED_METHODS = ("GET", "HEAD", "POST")

log = logging.getLogger("predict")
# Caller-chosen ids end up in logs and in the prediction table: keep them short and plain.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_TRACE_ID = re.compile(r"[0-9a-fA-F]{1,64}")


def trace_id_of(headers: Mapping[str, str]) -> str | None:
    """The trace id of X-Cloud-Trace-Context (TRACE_ID/SPAN_ID;o=...) if sane, else None."""
    trace = (headers.get("X-Cloud-Trace-Context") or "").split("/", 1)[0].strip()
    return trace if _TRACE_ID.fullmatch(trace) else None


def request_id_of(headers: Mapping[str, str]) -> str:
    """X-Request-Id if sane, else the trace id in X-Cloud-Trace-Context, else a new uuid4.
    Only echoed and logged as a column: log rows are keyed by the server (row_id)."""
    given = (headers.get("X-Request-Id") or "").strip()
    if _REQUEST_ID.fullmatch(given):
        return given
    return trace_id_of(headers) or uuid.uuid4().hex


def _json_response(
    body: dict[str, Any],
    status: int,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> flask.Response:
    # allow_nan=False: a NaN from a broken model becomes a 500, never invalid JSON for the caller.
    response = flask.Response(
        json.dumps(body, allow_nan=False), status=status, mimetype="application/json"
    )
    response.headers["X-Request-Id"] = request_id
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _reject_declared_oversize(request: flask.Request) -> None:
    limit = LIMITS.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge("body_too_large", f"body is over the limit of {limit} bytes")


def _read_body(request: flask.Request) -> bytes:
    # Bounded read: a chunked body has no Content-Length to check up front (parse_texts then
    # answers 413 for the extra byte).
    return request.stream.read(LIMITS.max_body_bytes + 1)


# What GET tells a caller about a failed load (the details, with paths, are in the server log).
_UNAVAILABLE = {
    "not_found": "no model to serve: the production pointer, or the bundle it names, is missing",
    "corrupt": "the model bundle failed verification: a file does not match its manifest",
    "unreachable": "the artifact store could not be read",
    "invalid": "the model bundle is not usable (manifest or model files)",
    "internal": "the model could not be loaded",
}


def _health() -> tuple[dict[str, Any], int]:
    """Readiness: 200 only when a model is loaded and serving. Loads it if needed (the same lazy
    load, under the same lock, as a POST), so an instance that answers 200 serves at once; 503
    with the reason when there is nothing to serve (retried as for POST, after
    LOAD_RETRY_SECONDS)."""
    try:
        model: Any = MODEL.get()[0]
    except ModelUnavailable:
        model = None
    body: dict[str, Any] = {
        "status": "ok" if model else "unavailable",
        "loaded": model is not None,
        "model_version": model.version if model else None,
        "labels": model.labels if model else None,
        "max_length": model.max_length if model else None,
        "threshold": model.threshold if model else None,
        "ood": (model.ood is not None) if model else None,
        "limits": {
            "max_instances": LIMITS.max_instances,
            "max_text_chars": LIMITS.max_text_chars,
            "max_body_bytes": LIMITS.max_body_bytes,
        },
    }
    body["candidate"] = ROLLOUT.describe()
    if model is None:
        reason = MODEL.error_reason or "internal"
        body["error"] = {
            "code": "model_unavailable",
            "reason": reason,
            "message": f"{_UNAVAILABLE.get(reason, _UNAVAILABLE['internal'])}; retried later",
        }
        return body, 503
    return body, 200


def _predict(request: flask.Request, request_id: str) -> dict[str, Any]:
    _reject_declared_oversize(request)  # 413 before the content type matters
    check_content_type(request.mimetype, request.mimetype_params)
    texts = parse_texts(_read_body(request), LIMITS)
    model, cold_start = MODEL.get()
    model = ROLLOUT.answering(model)
    started = time.perf_counter()
    # Alone in flight: the model may use every core (serving_core.model, solo session).
    predictions = model.predict(texts, solo=ROLLOUT.alone())
    latency_ms = (time.perf_counter() - started) * 1000
    trace_id = trace_id_of(request.headers)
    rows = prediction_log_rows(
        request_id, trace_id, texts, predictions, model, latency_ms, cold_start
    )
    PREDICTION_LOG(rows)
    ROLLOUT.shadow(model, request_id, trace_id, texts)
    return {
        "predictions": [
            {
                "label": p.label,
                "score": p.label_probability,
                "probabilities": p.probabilities,
                "truncated": p.truncated,
                "ood_score": p.ood_score,
                "in_domain": p.in_domain,
            }
            for p in predictions
        ],
        "model_version": model.version,
        "request_id": request_id,
    }


@functions_framework.http
def predict(request: flask.Request) -> flask.Response:
    request_id = request_id_of(request.headers)
    try:
        if request.method in ("GET", "HEAD"):
            body, status = _health()
            body["request_id"] = request_id
            headers = {"Retry-After": "5"} if status == 503 else None
            return _json_response(body, status, request_id, headers)
        if request.method != "POST":
            raise MethodNotAllowed(request.method, ALLOWED_METHODS)
        with ROLLOUT.live_request():  # a shadow candidate scores only between live requests
            body = _predict(request, request_id)
        return _json_response(body, 200, request_id)
    except ApiError as exc:
        body = error_body(exc.code, exc.message, request_id)
        return _json_response(body, exc.status, request_id, exc.headers)
    except Exception:
        log.exception("unhandled error in request %s", request_id)
        body = error_body(
            "internal",
            "internal error; quote the request_id if you report it",
            request_id,
        )
        return _json_response(body, 500, request_id)
