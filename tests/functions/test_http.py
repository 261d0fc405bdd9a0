"""The function served by functions-framework on 127.0.0.1 (subprocess), over real HTTP."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow


def test_get_reports_health_and_metadata(served_tiny, tiny_store: Path) -> None:
    version = json.loads((tiny_store / "models" / "production.json").read_text())["version"]
    manifest = json.loads((tiny_store / "models" / version / "manifest.json").read_text())
    requests.post(served_tiny.url, json={"text": "load it"}, timeout=30).raise_for_status()
    health = requests.get(served_tiny.url, timeout=5)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["loaded"] is True
    assert body["model_version"] == version
    assert body["labels"] == manifest["labels"]
    assert body["max_length"] == manifest["max_length"]


def test_both_request_shapes_and_truncation(served_tiny) -> None:
    single = requests.post(served_tiny.url, json={"text": "Masks reduce spread."}, timeout=30)
    assert single.status_code == 200
    assert len(single.json()["predictions"]) == 1
    batch = requests.post(
        served_tiny.url,
        json={"instances": [{"text": "short"}, {"text": "very long post " * 400}]},
        headers={"X-Request-Id": "batch-1"},
        timeout=30,
    )
    assert batch.status_code == 200
    body = batch.json()
    assert body["request_id"] == "batch-1"
    assert [p["truncated"] for p in body["predictions"]] == [False, True]
    for p in body["predictions"]:
        assert p["label"] in ("real", "fake")
        assert p["probabilities"]["real"] + p["probabilities"]["fake"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "{oops", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
        ({"json": {"instances": [{"text": 3}]}}, 400, "invalid_text"),
        ({"json": {"text": ""}}, 400, "empty_text"),
        (
            {"data": "text=hi", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ({"json": {"instances": [{"text": "a"}] * 65}}, 413, "too_many_instances"),
        ({"json": {"text": "a" * 20_001}}, 413, "text_too_long"),
        # Chunked upload (no Content-Length) over the body limit: the bounded read catches it.
        (
            {
                "data": iter([b'{"text": "', b"a" * (1024 * 1024), b'"}']),
                "headers": {"Content-Type": "application/json"},
            },
            413,
            "body_too_large",
        ),
    ],
)
def test_bad_requests_over_the_wire(served_tiny, kwargs: dict, status: int, code: str) -> None:
    response = requests.post(served_tiny.url, timeout=30, **kwargs)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_unknown_method(served_tiny) -> None:
    response = requests.delete(served_tiny.url, timeout=5)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_concurrent_requests_all_answer_consistently(served_tiny) -> None:
    texts = [
        f"Post number {i} about the vaccine rollout" + " and more" * (i % 7) for i in range(12)
    ]
    expected = {
        t: requests.post(served_tiny.url, json={"text": t}, timeout=30).json()["predictions"][0]
        for t in texts
    }

    def call(i: int) -> tuple[str, int, dict]:
        text = texts[i % len(texts)]
        with requests.Session() as session:  # keep-alive per worker
            response = session.post(served_tiny.url, json={"text": text}, timeout=30)
            return text, response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(96)))
    assert [status for _, status, _ in results] == [200] * 96
    for text, _, body in results:
        got = body["predictions"][0]
        assert got["label"] == expected[text]["label"]
        assert got["probabilities"]["fake"] == pytest.approx(
            expected[text]["probabilities"]["fake"], abs=1e-6
        )
    assert len({body["request_id"] for _, _, body in results}) == 96
