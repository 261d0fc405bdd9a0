"""Loading over the instance's life: cold start from fake-gcs-server, corrupt and missing bundles
(503, no crash loop, retried later), and a model swap after promotion (a cold start; the hot
reload of warm instances is in test_hot_reload.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow


def _production(store: Path) -> tuple[str, Path]:
    version = json.loads((store / "models" / "production.json").read_text())["version"]
    return version, store / "models" / version


def test_cold_start_fetches_from_fake_gcs(start_function, fake_gcs, tiny_store: Path) -> None:
    fake_gcs.upload_folder(tiny_store / "models", "models-bucket", "store/models")
    version, _ = _production(tiny_store)
    served = start_function(
        {
            "MODEL_URI": "gs://models-bucket/store/models/production.json",
            "STORAGE_EMULATOR_HOST": fake_gcs.url,
        }
    )
    assert "loaded model" not in served.log()  # nothing at import: the port is up, no model
    # The readiness GET loads it (in the serving process) and is 200 only once it serves.
    health = requests.get(served.url, timeout=30)
    assert health.status_code == 200, served.log()
    assert health.json()["loaded"] is True and health.json()["model_version"] == version
    assert served.log().count("loaded model") == 1
    response = requests.post(served.url, json={"text": "hello"}, timeout=30)
    assert response.status_code == 200, served.log()
    assert response.json()["model_version"] == version


def test_corrupt_bundle_is_503_then_recovers(start_function, store_copy: Path) -> None:
    _, bundle = _production(store_copy)
    model = bundle / "model.onnx"
    good = model.read_bytes()
    model.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    served = start_function(
        {"MODEL_URI": str(store_copy / "models" / "production.json"), "LOAD_RETRY_SECONDS": "0"}
    )
    for _ in range(2):  # stays up and keeps answering 503: no crash loop
        response = requests.post(served.url, json={"text": "hello"}, timeout=30)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_unavailable"
    assert served.process.poll() is None
    assert "model bundle unavailable" in served.log() and "sha256" in served.log()
    model.write_bytes(good)  # the store is repaired: a later request loads it
    assert requests.post(served.url, json={"text": "hello"}, timeout=30).status_code == 200


def test_missing_bundle_is_503(start_function, tmp_path: Path) -> None:
    served = start_function({"MODEL_URI": str(tmp_path / "empty" / "models" / "production.json")})
    response = requests.post(served.url, json={"text": "hello"}, timeout=30)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert "does not exist" in served.log()
    health = requests.get(served.url, timeout=30)
    assert health.status_code == 503 and health.json()["error"]["reason"] == "not_found"
    assert served.process.poll() is None


def test_model_swap_after_promotion(start_function, store_copy: Path) -> None:
    old_version, old_bundle = _production(store_copy)
    pointer = store_copy / "models" / "production.json"
    old = start_function({"MODEL_URI": str(pointer)})
    assert (
        requests.post(old.url, json={"text": "a"}, timeout=30).json()["model_version"]
        == old_version
    )

    # Publish a second version (same weights, another temperature) and promote it.
    new_version = "20990101T000000Z-0123456"
    new_bundle = store_copy / "models" / new_version
    shutil.copytree(old_bundle, new_bundle)
    manifest = json.loads((new_bundle / "manifest.json").read_text())
    manifest["version"] = new_version
    manifest["calibration"]["temperature"] = manifest["calibration"]["temperature"] * 3
    (new_bundle / "manifest.json").write_text(json.dumps(manifest))
    pointer.write_text(
        json.dumps(
            {"version": new_version, "promoted_at": "2099-01-01T00:00:00Z", "previous": old_version}
        )
    )

    # Until its next pointer check (MODEL_REFRESH_SECONDS, 30 s) the running instance serves its
    # loaded version; a cold start serves the new one at once.
    assert (
        requests.post(old.url, json={"text": "a"}, timeout=30).json()["model_version"]
        == old_version
    )
    new = start_function({"MODEL_URI": str(pointer)})
    body = requests.post(new.url, json={"text": "a"}, timeout=30).json()
    assert body["model_version"] == new_version
    assert requests.get(new.url, timeout=5).json()["model_version"] == new_version


def test_predictions_reach_the_prediction_log(start_function, tiny_store: Path, tmp_path) -> None:
    """Through the real logger: a line spooled beside the DuckDB file before the response, in the
    table once a reader opens it (prediction_log.line_spool)."""
    from prediction_log.line_spool import connect_and_load

    database = tmp_path / "predictions.duckdb"
    served = start_function(
        {
            "MODEL_URI": str(tiny_store / "models" / "production.json"),
            "PREDICTION_LOG": f"duckdb://{database}",
            "DEAD_LETTER_URI": str(tmp_path / "dead_letter"),
        }
    )
    body = {"instances": [{"text": "first"}, {"text": "second"}]}
    response = requests.post(
        served.url, json=body, headers={"X-Request-Id": "logged-1"}, timeout=30
    )
    assert response.status_code == 200
    served.stop()
    with connect_and_load(database, lock_wait_s=30) as con:
        rows = con.execute(
            "SELECT instance_index, label, text FROM predictions WHERE request_id = 'logged-1' "
            "ORDER BY instance_index"
        ).fetchall()
    labels = [p["label"] for p in response.json()["predictions"]]
    assert [(r[0], r[1]) for r in rows] == [(0, labels[0]), (1, labels[1])]
    assert all(r[2] is None for r in rows)  # LOG_TEXT is off by default: no text stored
