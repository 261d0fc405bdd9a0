"""Canary and shadow in the function (in-process, tiny bundles): a canary at 10% answers 10% +/- 2%
of 2,000 requests, drawn by the server (a caller repeating a request id cannot pick the version),
and every answer and log row names its version; a shadow's rows are logged with the flag and never
returned; its queue drops work instead of blocking; abort and promotion reach a warm instance, a
promotion without a second load; a candidate's load error is logged, and the caller sees only its
kind."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _canary_shadow import ShadowJob, ShadowWorker

from artifact_store import open_store
from export import publish
from tests.functions._rollout import LOAD_BUDGET_S, add_version, start_in_process, wait_for

pytestmark = pytest.mark.slow
V2 = "20990101T000000Z-0123456"
INTERVAL_S = 0.2


@pytest.fixture
def instances() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for main in started:
        main.MODEL.close()
        main.ROLLOUT.close()


def _start(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instances: list[Any]
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """The function on the store's pointer, its log rows captured instead of written."""
    env = {
        "MODEL_URI": str(store / "models" / "production.json"),
        "MODEL_REFRESH_SECONDS": str(INTERVAL_S),
        "PREDICTION_LOG": "none",
        "BUNDLE_CACHE_DIR": str(tmp_path / "cache"),
    }
    app, main = start_in_process(env, monkeypatch)
    instances.append(main)
    rows: list[dict[str, Any]] = []
    monkeypatch.setattr(main, "PREDICTION_LOG", rows.extend)
    main.ROLLOUT.log_rows = rows.extend
    return app.test_client(), main, rows


def _post(client: Any, texts: list[str], request_id: str | None = None) -> dict[str, Any]:
    headers = {"X-Request-Id": request_id} if request_id else {}
    response = client.post("/", json={"instances": [{"text": t} for t in texts]}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _with_candidate(store: Path, mode: str, fraction: float | None = None) -> str:
    add_version(store, V2)
    publish.start_candidate(open_store(store), V2, mode, fraction)
    return publish.read_pointer(open_store(store))["version"]


def test_canary_answers_its_share_drawn_by_the_server(
    store_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instances: list[Any]
) -> None:
    v1 = _with_candidate(store_copy, "canary", 0.1)
    client, main, rows = _start(store_copy, tmp_path, monkeypatch, instances)
    _post(client, ["warm up"])  # the first load notes the candidate; it loads in the background
    wait_for(lambda: main.ROLLOUT.candidate is not None, LOAD_BUDGET_S)
    assert client.get("/").get_json()["candidate"] == {
        "version": V2,
        "mode": "canary",
        "fraction": 0.1,
        "loaded": True,
    }
    rows.clear()

    answered = {}
    for i in range(2000):
        body = _post(client, ["Masks reduce transmission, says the health ministry."], f"r-{i}")
        assert body["request_id"] == f"r-{i}"
        answered[f"r-{i}"] = body["model_version"]
    counts = Counter(answered.values())
    assert set(counts) == {v1, V2}
    assert 0.08 * 2000 <= counts[V2] <= 0.12 * 2000, counts
    # Every log row names the version that answered its request.
    assert {r["request_id"]: r["model_version"] for r in rows} == answered
    assert not any(r["shadow"] for r in rows)

    # The caller cannot pick the version: an id the canary answered, sent again, gets
    # production about 90% of the time, and one production answered gets the canary about 10%.
    canary_id = next(rid for rid, v in answered.items() if v == V2)
    production_id = next(rid for rid, v in answered.items() if v == v1)
    for request_id, other in ((canary_id, v1), (production_id, V2)):
        again = Counter(_post(client, ["again"], request_id)["model_version"] for _ in range(300))
        assert again[other] > 0 and 0.04 * 300 <= again[V2] <= 0.18 * 300, again
    # Without an id each request is placed on its own: both versions still answer.
    assert len({_post(client, ["no id"])["model_version"] for _ in range(80)}) == 2


def test_shadow_rows_are_logged_with_the_flag_and_never_returned(
    store_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instances: list[Any]
) -> None:
    v1 = _with_candidate(store_copy, "shadow")
    client, main, rows = _start(store_copy, tmp_path, monkeypatch, instances)
    _post(client, ["warm up"])
    wait_for(lambda: main.ROLLOUT.candidate is not None, LOAD_BUDGET_S)
    rows.clear()

    texts = ["Drinking bleach cures covid.", "Cases fell by 12% this week in the region."]
    for i in range(40):
        body = _post(client, texts, f"s-{i}")
        assert body["model_version"] == v1  # the shadow never answers
    worker = main.ROLLOUT.shadow_worker
    # At the lowest CPU priority the worker may lag on a busy machine: allow it time.
    wait_for(lambda: worker.counts["scored"] + worker.counts["dropped"] >= 40, 3 * LOAD_BUDGET_S)
    assert worker.counts["failed"] == 0 and worker.counts["scored"] > 0

    live = [r for r in rows if not r["shadow"]]
    shadow = [r for r in rows if r["shadow"]]
    assert len(live) == 80 and {r["model_version"] for r in live} == {v1}
    assert shadow and {r["model_version"] for r in shadow} == {V2}
    assert len(shadow) == 2 * worker.counts["scored"]
    by_key = {(r["request_id"], r["instance_index"], r["text_sha256"]): r for r in live}
    for r in shadow:  # each pairs with the answer its request got, on the same text
        partner = by_key[(r["request_id"], r["instance_index"], r["text_sha256"])]
        assert r["row_id"] != partner["row_id"] and not r["cold_start"]
        assert r["fake_probability"] != pytest.approx(partner["fake_probability"])
    health = client.get("/").get_json()["candidate"]
    assert health["mode"] == "shadow" and health["shadow"]["scored"] == worker.counts["scored"]


def test_a_full_shadow_queue_drops_instead_of_blocking() -> None:
    release = threading.Event()

    def slow_predict(texts: list[str]) -> list[Any]:
        release.wait(10)
        return []

    model = SimpleNamespace(version=V2, positive_label="fake", predict=slow_predict)
    logged: list[Any] = []
    worker = ShadowWorker(logged.extend, max_requests=2)
    started = time.perf_counter()
    accepted = [worker.submit(ShadowJob(model, f"q-{i}", None, [])) for i in range(10)]  # type: ignore[arg-type]
    # A submit that waited for the worker would wait out slow_predict's 10 s; the bound leaves
    # room for a busy machine.
    assert time.perf_counter() - started < 5.0
    # One job being scored, two queued, the rest dropped and counted.
    assert accepted[:2] == [True, True] and accepted.count(True) <= 3
    assert worker.counts["dropped"] == accepted.count(False) >= 7
    release.set()
    worker.close(finish_queued=True)
    assert worker.counts["scored"] == accepted.count(True)


def test_abort_and_promotion_reach_a_warm_instance(
    store_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instances: list[Any]
) -> None:
    v1 = _with_candidate(store_copy, "canary", 0.5)
    store = open_store(store_copy)
    client, main, _ = _start(store_copy, tmp_path, monkeypatch, instances)
    _post(client, ["warm up"])
    wait_for(lambda: main.ROLLOUT.candidate is not None, LOAD_BUDGET_S)

    publish.abort_candidate(store)
    wait_for(lambda: main.ROLLOUT.candidate is None, INTERVAL_S + LOAD_BUDGET_S)
    assert {_post(client, ["x"], f"a-{i}")["model_version"] for i in range(40)} == {v1}
    assert client.get("/").get_json()["candidate"] is None

    publish.start_candidate(store, V2, "shadow")
    wait_for(lambda: main.ROLLOUT.candidate is not None, INTERVAL_S + LOAD_BUDGET_S)
    loads: list[str] = []
    real_loader = main.ROLLOUT._loader
    monkeypatch.setattr(
        main.ROLLOUT, "_loader", lambda cfg: loads.append(cfg.model_uri) or real_loader(cfg)
    )
    publish.promote_candidate(store)
    wait_for(lambda: main.MODEL.model.version == V2, INTERVAL_S + LOAD_BUDGET_S)
    assert _post(client, ["x"])["model_version"] == V2
    assert loads == []  # the loaded candidate became production as it was
    wait_for(lambda: main.ROLLOUT.candidate is None, INTERVAL_S + LOAD_BUDGET_S)


def test_a_candidate_load_error_reaches_the_log_not_the_caller(
    store_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instances: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _with_candidate(store_copy, "shadow")
    tokenizer = store_copy / "models" / V2 / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text() + " ")  # corrupt after the pointer names it
    client, main, _ = _start(store_copy, tmp_path, monkeypatch, instances)
    _post(client, ["warm up"])
    wait_for(lambda: main.ROLLOUT.load_error is not None, LOAD_BUDGET_S)

    error = client.get("/").get_json()["candidate"]["error"]
    assert error["code"] == "candidate_unavailable" and "(corrupt)" in error["message"]
    assert str(store_copy) not in json.dumps(error) and "tokenizer.json" not in json.dumps(error)
    logged = capsys.readouterr().err
    assert f"candidate {V2} could not be loaded" in logged and "tokenizer.json" in logged


def test_a_promoted_candidate_rolled_back_before_it_served_leaves_no_copy(
    store_copy: Path, tmp_path: Path
) -> None:
    from _canary_shadow import ActiveCandidate, Rollout
    from _config import ServeConfig

    v1 = publish.read_pointer(open_store(store_copy))["version"]
    cache = tmp_path / "cache"
    config = ServeConfig.from_env(
        {
            "MODEL_URI": str(store_copy / "models" / "production.json"),
            "BUNDLE_CACHE_DIR": str(cache),
            "PREDICTION_LOG": "none",
        }
    )
    production = SimpleNamespace(version=v1, bundle_dir=cache / v1)
    rollout = Rollout(config, log_rows=lambda rows: None, loader=lambda _: production)
    try:
        # The candidate V2 was promoted (the loader handed it to production's next load), then
        # the pointer went back to v1 before production's reload read it.
        copy = cache / V2
        copy.mkdir(parents=True)
        (copy / "model.onnx").write_bytes(b"weights")
        candidate = SimpleNamespace(version=V2, bundle_dir=copy)
        rollout._promoted = ActiveCandidate(candidate, "canary", 0.1, 1)  # type: ignore[arg-type]
        rollout._production_version = V2

        assert rollout.load_production(config) is production
        assert not copy.exists()
    finally:
        rollout.close()
