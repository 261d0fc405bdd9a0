"""HTTP behaviour in-process (Flask test client of the functions-framework app): error bodies,
status codes, request ids, the 500 and 503 paths, and the prediction-log hook."""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import functions_framework
import pytest
from _config import ServeConfig
from _errors import ModelUnavailable
from _service import ModelHolder, PredictionLogHook

from prediction_log.schema import find_schema_file
from prediction_log.settings import LogSettings
from testing.paths import FUNCTION_DIR
from tests.conftest import wait_for_background_sessions

LOG_SCHEMA = json.loads(find_schema_file().read_text())


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Any]:
    def make(**env: str) -> Any:
        base = {"PREDICTION_LOG": "none", "BUNDLE_CACHE_DIR": str(tmp_path / "cache")}
        wait_for_background_sessions()
        for name, value in {**base, **env}.items():
            monkeypatch.setenv(name, value)
        app = functions_framework.create_app("predict", str(FUNCTION_DIR / "main.py"))
        return app.test_client()

    return make


@pytest.fixture
def client(make_client: Callable[..., Any], tiny_bundle: Path) -> Any:
    return make_client(MODEL_URI=str(tiny_bundle), MAX_BODY_BYTES="4096", MAX_INSTANCES="4")


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def test_prediction_shape(client: Any, tiny_bundle: Path) -> None:
    version = json.loads((tiny_bundle / "manifest.json").read_text())["version"]
    response = client.post("/", json={"instances": [{"text": "a"}, {"text": "b c"}]})
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_version"] == version
    assert len(body["predictions"]) == 2
    for prediction in body["predictions"]:
        assert set(prediction) == {
            "label",
            "score",
            "probabilities",
            "truncated",
            "ood_score",
            "in_domain",
        }
        assert prediction["score"] == prediction["probabilities"][prediction["label"]]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_unknown_method_is_405_with_allow(client: Any, method: str) -> None:
    response = client.open("/", method=method, json={"text": "a"})
    _assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}


def test_wrong_content_type_is_415(client: Any) -> None:
    _assert_error(
        client.post("/", data='{"text": "a"}', content_type="text/plain"),
        415,
        "unsupported_media_type",
    )
    _assert_error(client.post("/", data={"text": "a"}), 415, "unsupported_media_type")  # form post


def test_malformed_json_is_400(client: Any) -> None:
    _assert_error(client.post("/", data="{", content_type="application/json"), 400, "invalid_json")


def test_body_over_limit_is_413_even_before_content_type(client: Any) -> None:
    big = json.dumps({"text": "x" * 5000})
    _assert_error(
        client.post("/", data=big, content_type="application/json"), 413, "body_too_large"
    )
    _assert_error(client.post("/", data=big, content_type="text/plain"), 413, "body_too_large")


def test_too_many_instances_is_413(client: Any) -> None:
    response = client.post("/", json={"instances": [{"text": "a"}] * 5})
    _assert_error(response, 413, "too_many_instances")


def test_request_id_sources(client: Any) -> None:
    given = client.post("/", json={"text": "a"}, headers={"X-Request-Id": "abc-123"})
    assert given.get_json()["request_id"] == "abc-123" == given.headers["X-Request-Id"]
    traced = client.get(
        "/", headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
    )
    assert traced.get_json()["request_id"] == "105445aa7843bc8bf206b12000100000"
    junk = client.get("/", headers={"X-Request-Id": "<script>" + "x" * 300})
    assert re.fullmatch(r"[0-9a-f]{32}", junk.get_json()["request_id"])  # a fresh uuid4 instead


def test_unexpected_exception_is_500_without_details(
    client: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    assert client.post("/", json={"text": "warm up"}).status_code == 200
    model = sys.modules["main"].MODEL.model

    def boom(texts: list[str], solo: bool = False) -> list[Any]:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(model, "predict", boom)
    response = client.post("/", json={"text": "a"}, headers={"X-Request-Id": "req-500"})
    body = _assert_error(response, 500, "internal")
    assert "secret" not in response.get_data(as_text=True)
    assert body["request_id"] == "req-500"
    server_log = capfd.readouterr().err
    assert (
        "req-500" in server_log
        and "Traceback" in server_log
        and "secret internal detail" in server_log
    )


def test_missing_bundle_is_503_and_health_says_so(
    make_client: Callable[..., Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    client = make_client(MODEL_URI=str(tmp_path / "nowhere" / "production.json"))
    # GET is the readiness check: it tries the load itself, never 200 without a model.
    health = client.get("/")
    assert health.status_code == 503 and health.headers["Retry-After"]
    body = health.get_json()
    assert body["status"] == "unavailable" and body["loaded"] is False
    assert body["model_version"] is None
    assert body["error"]["code"] == "model_unavailable" and body["error"]["reason"] == "not_found"
    assert "nowhere" not in health.get_data(as_text=True)  # paths stay in the server log
    assert "model bundle unavailable" in capfd.readouterr().err  # the clear log line
    response = client.post("/", json={"text": "a"})
    _assert_error(response, 503, "model_unavailable")
    assert response.headers["Retry-After"]


def test_get_loads_the_model_and_is_ready_with_its_version(
    make_client: Callable[..., Any], tiny_bundle: Path
) -> None:
    client = make_client(MODEL_URI=str(tiny_bundle))
    main = sys.modules["main"]
    assert main.MODEL.model is None  # nothing loaded at import
    health = client.get("/")
    version = json.loads((tiny_bundle / "manifest.json").read_text())["version"]
    assert health.status_code == 200
    assert health.get_json()["status"] == "ok" and health.get_json()["model_version"] == version
    assert main.MODEL.model is not None and main.MODEL.model.version == version
    # The POST after it finds the model loaded: it is not the instance's cold start.
    assert client.post("/", json={"text": "a"}).status_code == 200


def test_corrupt_bundle_makes_get_503_with_the_reason(
    make_client: Callable[..., Any], tiny_bundle: Path, tmp_path: Path
) -> None:
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    client = make_client(MODEL_URI=str(bundle), LOAD_RETRY_SECONDS="0")
    health = client.get("/")
    assert health.status_code == 503 and health.get_json()["error"]["reason"] == "corrupt"
    shutil.copy(tiny_bundle / "model.onnx", model)  # repaired: the next GET loads it
    assert client.get("/").status_code == 200


def test_load_is_retried_after_a_failure_but_not_in_a_burst() -> None:
    now = [0.0]
    attempts: list[float] = []
    sentinel = types.SimpleNamespace(version="v", labels=["real", "fake"])

    def loader(_config: Any) -> Any:
        attempts.append(now[0])
        if len(attempts) == 1:
            raise OSError("store down")
        return sentinel

    holder = ModelHolder(
        config=cast(ServeConfig, types.SimpleNamespace(model_uri="x")),
        retry_after_s=2.0,
        loader=loader,
        clock=lambda: now[0],
    )
    with pytest.raises(ModelUnavailable):
        holder.get()
    now[0] = 1.0
    with pytest.raises(ModelUnavailable):
        holder.get()  # within the retry window: no new attempt
    assert attempts == [0.0]
    now[0] = 2.5
    assert holder.get() == (sentinel, True)  # retried, and this request is the cold start
    assert holder.get() == (sentinel, False)
    assert attempts == [0.0, 2.5]


class RecordingLogger:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def log(self, rows: list[dict[str, Any]]) -> None:
        self.batches.append(rows)


def test_rows_handed_to_the_logger_match_the_log_schema(
    make_client: Callable[..., Any], tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingLogger()
    fake_module = types.ModuleType("prediction_log.logger")
    fake_module.get_logger = lambda settings=None: recorder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prediction_log.logger", fake_module)
    client = make_client(MODEL_URI=str(tiny_bundle), PREDICTION_LOG="duckdb://unused.duckdb")
    texts = ["first post", "second " * 500]
    client.post(
        "/", json={"instances": [{"text": t} for t in texts]}, headers={"X-Request-Id": "r1"}
    )
    client.post("/", json={"text": "again"}, headers={"X-Request-Id": "r2"})
    first, second = recorder.batches
    names = [field["name"] for field in LOG_SCHEMA]
    for row in first + second:
        assert list(row) == names
        for field in LOG_SCHEMA:
            if field["mode"] == "REQUIRED":
                assert row[field["name"]] is not None, field["name"]
    assert [(r["request_id"], r["instance_index"]) for r in first] == [("r1", 0), ("r1", 1)]
    # The key is the server's: one per row, never the caller's request id.
    assert len({r["row_id"] for r in first + second}) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["row_id"]) for r in first + second)
    assert [r["text"] for r in first] == texts
    assert first[1]["truncated"] is True and first[1]["token_count"] > first[1]["char_count"] / 10
    assert first[0]["cold_start"] is True and second[0]["cold_start"] is False
    assert first[0]["latency_ms"] > 0


def test_a_failing_logger_never_fails_the_prediction(
    make_client: Callable[..., Any], tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def log(self, rows: list[dict[str, Any]]) -> None:
            raise OSError("disk full")

    fake_module = types.ModuleType("prediction_log.logger")
    fake_module.get_logger = lambda settings=None: Broken()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prediction_log.logger", fake_module)
    client = make_client(MODEL_URI=str(tiny_bundle), PREDICTION_LOG="duckdb://unused.duckdb")
    assert client.post("/", json={"text": "a"}).status_code == 200


def test_prediction_log_none_never_imports_the_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        sys.modules, "prediction_log.logger", None
    )  # any import would raise ImportError
    hook = PredictionLogHook(LogSettings(sink_uri="none"))
    hook([{"request_id": "x"}])
    assert hook.enabled is False
