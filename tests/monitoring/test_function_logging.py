"""The real function (functions-framework on 127.0.0.1, the tiny bundle) logging through the
bq:// sink into bqemulator: rows match the answers; with BigQuery down predictions are still
served, rows spill when the server is stopped with SIGTERM, and replay restores them once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from monitoring._engines import BigQueryEngine
from monitoring.cli import main as monitoring_main
from prediction_log.dead_letter import DeadLetter
from testing.bigquery_emulator import BigQueryEmulator
from testing.processes import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
FUNCTION_DIR = ROOT / "functions" / "predict"
TEXTS = [
    "The WHO reports 1,200 new cases in the region today.",
    "5G towers spread the coronavirus, share before they delete this!",
    "Vaccines are now available at all pharmacies, says the health ministry.",
]


class Function:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "functions_framework", "--target", "predict",
                 "--source", str(FUNCTION_DIR / "main.py"),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(log_path.read_text())
            try:  # a TCP connection, not GET: GET would load the model and take the cold start
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)

    def predict(self, texts: list[str]) -> dict[str, Any]:
        body = json.dumps({"instances": [{"text": t} for t in texts]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.status == 200
            return json.loads(resp.read())

    def stop(self) -> int:
        """SIGTERM, as Cloud Run sends before an instance goes away."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return int(self.proc.returncode)


def _env(bq: BigQueryEngine, store: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "MODEL_URI": str(store / "models" / "production.json"),
        "PREDICTION_LOG": f"bq://{bq.dataset}.predictions",
        "DEAD_LETTER_URI": str(tmp_path / "dead"),
        "BUNDLE_CACHE_DIR": str(tmp_path / "bundle-cache"),
        "PREDICTION_LOG_MAX_AGE_S": "600",  # only SIGTERM/exit flushes: rows are buffered
    }


def _stored(bq: BigQueryEngine) -> dict[tuple[str, int], dict[str, Any]]:
    rows = bq.query(f"SELECT * FROM `{bq.dataset}.predictions`")
    return {(r["request_id"], r["instance_index"]): r for r in rows}


def _expected(answers: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(a["request_id"], i): p for a in answers for i, p in enumerate(a["predictions"])}


def test_function_rows_land_in_bigquery_on_sigterm(
    bq: BigQueryEngine, tiny_store: Path, tmp_path: Path
) -> None:
    function = Function(_env(bq, tiny_store, tmp_path), tmp_path / "function.log")
    try:
        answers = [function.predict(TEXTS[: 1 + k % 3]) for k in range(6)]
    finally:
        function.stop()
    stored, expected = _stored(bq), _expected(answers)
    assert set(stored) == set(expected), function.log_path.read_text()[-3000:]
    for key, prediction in expected.items():
        row = stored[key]
        assert row["label"] == prediction["label"]
        assert row["fake_probability"] == pytest.approx(prediction["probabilities"]["fake"])
        assert row["model_version"] == answers[0]["model_version"]
        assert row["text"] is None
    assert sum(r["cold_start"] for r in stored.values() if r["instance_index"] == 0) == 1
    assert not list(DeadLetter(str(tmp_path / "dead")).pending())


def test_bigquery_down_predictions_served_rows_spilled_then_replayed(
    bq: BigQueryEngine, bq_emulator: BigQueryEmulator, tiny_store: Path, tmp_path: Path
) -> None:
    function = Function(_env(bq, tiny_store, tmp_path), tmp_path / "function.log")
    bq_emulator.stop()
    try:
        answers = [function.predict(TEXTS) for _ in range(5)]  # all 200 (asserted in predict)
        function.stop()
    finally:
        function.stop()
        bq_emulator.start()
    spilled = [r for f in DeadLetter(str(tmp_path / "dead")).pending() for r in f.rows]
    assert len(spilled) == 15, function.log_path.read_text()[-3000:]
    args = [
        "replay",
        "--log",
        f"bq://{bq.dataset}.predictions",
        "--dead-letter",
        str(tmp_path / "dead"),
    ]
    assert monitoring_main(args) == 0
    assert set(_stored(bq)) == set(_expected(answers))
    assert len(bq.query(f"SELECT request_id FROM `{bq.dataset}.predictions`")) == 15
