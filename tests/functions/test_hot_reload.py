"""Hot reload: a warm instance picks up a promotion within MODEL_REFRESH_SECONDS (plus the load),
loads it off the request path, and keeps serving the old version when the new one is corrupt."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _config import DEFAULTS, ServeConfig

from export import publish
from export.store import open_store
from tests.functions._rollout import (
    LOAD_BUDGET_S,
    add_version,
    point_at,
    start_in_process,
    wait_for,
)

pytestmark = pytest.mark.slow
V2 = "20990101T000000Z-0123456"


@pytest.fixture
def instances() -> Iterator[list[Any]]:
    """Main modules started by a test; their refresher threads are stopped after it."""
    started: list[Any] = []
    yield started
    for main in started:
        main.MODEL.close()


def _env(model_uri: str, tmp_path: Path, refresh_s: float) -> dict[str, str]:
    return {
        "MODEL_URI": model_uri,
        "MODEL_REFRESH_SECONDS": str(refresh_s),
        "PREDICTION_LOG": "none",
        "BUNDLE_CACHE_DIR": str(tmp_path / "cache"),
    }


def _version(client: Any) -> str:
    response = client.post("/", json={"text": "hello"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["model_version"]


def test_refresh_interval_is_a_setting() -> None:
    assert DEFAULTS["MODEL_REFRESH_SECONDS"] == "30"
    assert ServeConfig.from_env({"MODEL_REFRESH_SECONDS": "5"}).model_refresh_seconds == 5.0
    assert ServeConfig.from_env({"MODEL_REFRESH_SECONDS": "0"}).model_refresh_seconds == 0.0


def test_promotion_reaches_a_warm_instance_within_the_interval(
    store_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instances: list[Any]
) -> None:
    interval = 1.0
    pointer = str(store_copy / "models" / "production.json")
    app, main = start_in_process(_env(pointer, tmp_path, interval), monkeypatch)
    instances.append(main)
    client = app.test_client()
    v1 = _version(client)

    # A slow load, to show requests never wait for it: they keep getting v1 meanwhile.
    real_loader, loading = main.MODEL._loader, []

    def slow_loader(config: Any) -> Any:
        loading.append(time.monotonic())
        time.sleep(1.5)
        return real_loader(config)

    monkeypatch.setattr(main.MODEL, "_loader", slow_loader)
    add_version(store_copy, V2)
    publish.promote(open_store(store_copy), V2)
    promoted_at = time.monotonic()

    seen: list[str] = []
    while time.monotonic() < promoted_at + interval + LOAD_BUDGET_S:
        started = time.monotonic()
        seen.append(_version(client))
        assert time.monotonic() - started < 1.0  # answered during the load, never after it
        if seen[-1] == V2:
            break
    assert loading and loading[0] - promoted_at <= interval + 1.0  # checked within the interval
    assert seen[-1] == V2, "the new version was not switched to"
    assert seen == [v1] * (len(seen) - 1) + [V2]  # never back and forth
    assert len(seen) >= 3  # requests kept being answered while it loaded
    assert client.get("/").get_json()["model_version"] == V2


def test_corrupt_new_bundle_keeps_the_old_one_serving(
    store_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instances: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    interval = 0.2
    pointer = str(store_copy / "models" / "production.json")
    app, main = start_in_process(_env(pointer, tmp_path, interval), monkeypatch)
    instances.append(main)
    client = app.test_client()
    v1 = _version(client)

    model = add_version(store_copy, V2) / "model.onnx"
    good = model.read_bytes()
    model.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    point_at(store_copy, V2)

    attempts = []
    real_loader = main.MODEL._loader
    monkeypatch.setattr(
        main.MODEL, "_loader", lambda config: attempts.append(1) or real_loader(config)
    )
    wait_for(lambda: len(attempts) >= 3, 3 * interval + LOAD_BUDGET_S)  # retried every interval
    assert main.MODEL.reload_error and "sha256" in main.MODEL.reload_error
    for _ in range(3):
        assert _version(client) == v1
    assert client.get("/").get_json()["model_version"] == v1
    log = capsys.readouterr().err
    assert "hot reload failed" in log and f"still serving {v1}" in log

    model.write_bytes(good)  # the store is repaired: the next check switches
    wait_for(lambda: main.MODEL.model.version == V2, interval + LOAD_BUDGET_S)
    assert _version(client) == V2 and main.MODEL.reload_error is None


def test_promotion_on_gcs_reaches_the_instance_and_frees_the_old_copy(
    fake_gcs: Any,
    tiny_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instances: list[Any],
) -> None:
    fake_gcs.upload_folder(tiny_store / "models", "models-bucket", "store/models")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    interval = 0.5
    uri = "gs://models-bucket/store/models/production.json"
    app, main = start_in_process(_env(uri, tmp_path, interval), monkeypatch)
    instances.append(main)
    client = app.test_client()
    v1 = _version(client)
    assert (tmp_path / "cache" / v1 / "manifest.json").is_file()

    local = tmp_path / "local-store"
    shutil.copytree(tiny_store, local)
    store = open_store("gs://models-bucket/store")
    publish.publish(add_version(local, V2), store)
    publish.promote(store, V2)

    wait_for(lambda: main.MODEL.model.version == V2, interval + LOAD_BUDGET_S)
    assert _version(client) == V2
    # The demoted copy no longer takes memory (removed right after the switch, off requests).
    wait_for(lambda: not (tmp_path / "cache" / v1).exists(), 5.0)
    assert (tmp_path / "cache" / V2 / "manifest.json").is_file()
