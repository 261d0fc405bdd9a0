"""Concurrent requests while production flips between two versions: every response, every text of
a batch and every log row comes from the one version the response names."""

from __future__ import annotations

import json
import sys
import threading
import types
import uuid
from pathlib import Path
from typing import Any

import pytest

from serving_core.bundle import fetch_bundle
from serving_core.model import Model
from tests.functions._rollout import add_version, point_at, start_in_process, wait_for

pytestmark = pytest.mark.slow
V2 = "20990101T000000Z-0123456"
TEXTS = [f"post {i}: " + "the vaccine story " * i for i in range(8)]
CLIENTS = 4
FLIPS = 6


class RecordingLogger:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def log(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)  # one call per request; list.extend holds the GIL


def _expected(bundle: Path, tmp: Path) -> list[dict[str, float]]:
    model = Model.load(fetch_bundle(str(bundle), tmp), 1, 32, 1024)
    return [p.probabilities for p in model.predict(TEXTS)]


def test_no_response_mixes_versions_during_swaps(
    store_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = store_copy / "models"
    v1 = json.loads((models / "production.json").read_text())["version"]
    add_version(store_copy, V2)
    expected = {v: _expected(models / v, tmp_path) for v in (v1, V2)}
    for a, b in zip(expected[v1], expected[V2], strict=True):
        assert abs(a["fake"] - b["fake"]) > 1e-4  # the two versions are told apart by every text

    recorder = RecordingLogger()
    fake_module = types.ModuleType("prediction_log.logger")
    fake_module.get_logger = lambda *_: recorder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prediction_log.logger", fake_module)
    env = {
        "MODEL_URI": str(models / "production.json"),
        "MODEL_REFRESH_SECONDS": "0.05",
        "PREDICTION_LOG": "duckdb://unused.duckdb",
        "BUNDLE_CACHE_DIR": str(tmp_path / "cache"),
    }
    app, main = start_in_process(env, monkeypatch)
    switches: list[str] = []
    try:
        assert app.test_client().post("/", json={"text": "warm"}).status_code == 200
        answers: list[tuple[str, int, dict[str, Any]]] = []
        done = threading.Event()

        def client() -> None:
            http = app.test_client()
            while not done.is_set():
                request_id = uuid.uuid4().hex
                response = http.post(
                    "/",
                    json={"instances": [{"text": t} for t in TEXTS]},
                    headers={"X-Request-Id": request_id},
                )
                answers.append((request_id, response.status_code, response.get_json()))

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            for flip in range(FLIPS):
                target = V2 if flip % 2 == 0 else v1
                point_at(store_copy, target)
                wait_for(lambda t=target: main.MODEL.model.version == t, 20.0)
                switches.append(target)
                seen = len(answers)
                wait_for(lambda s=seen: len(answers) >= s + CLIENTS, 20.0)  # traffic on it
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=30)
    finally:
        main.MODEL.close()

    assert switches == [V2, v1] * (FLIPS // 2)
    rows_by_request: dict[str, list[dict[str, Any]]] = {}
    for row in recorder.rows:
        rows_by_request.setdefault(row["request_id"], []).append(row)
    versions = set()
    for request_id, status, body in answers:
        assert status == 200, body
        version = body["model_version"]
        versions.add(version)
        for prediction, want in zip(body["predictions"], expected[version], strict=True):
            assert prediction["probabilities"] == pytest.approx(want, abs=1e-7)
        rows = rows_by_request[request_id]
        assert len(rows) == len(TEXTS)
        assert {row["model_version"] for row in rows} == {version}
    assert versions == {v1, V2}
    assert len(answers) >= FLIPS * CLIENTS
