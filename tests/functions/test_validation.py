"""Request body validation: every bad body gets the right status and a stable error code."""

from __future__ import annotations

import json

import pytest
from _errors import ApiError
from _validation import Limits, check_content_type, parse_texts

LIMITS = Limits(max_instances=3, max_text_chars=50, max_body_bytes=2000)


def _parse(payload: object) -> list[str]:
    return parse_texts(json.dumps(payload).encode(), LIMITS)


def test_both_request_shapes() -> None:
    assert _parse({"instances": [{"text": "a"}, {"text": "b", "id": 7}], "parameters": {}}) == [
        "a",
        "b",
    ]
    assert _parse({"text": "héllo ✓"}) == ["héllo ✓"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[" * 1999, 400, "invalid_json"),  # nested deeper than the parser recurses
        (b"[]", 400, "invalid_request"),
        (b'"text"', 400, "invalid_request"),
        (b"{}", 400, "invalid_request"),
        (b'{"text": "a", "instances": []}', 400, "invalid_request"),
        (b'{"instances": {"text": "a"}}', 400, "invalid_request"),
        (b'{"instances": []}', 400, "invalid_request"),
        (b'{"instances": ["a"]}', 400, "invalid_instance"),
        (b'{"instances": [{"txt": "a"}]}', 400, "missing_text"),
        (b'{"text": null}', 400, "invalid_text"),
        (b'{"text": 5}', 400, "invalid_text"),
        (b'{"text": ["a"]}', 400, "invalid_text"),
        (b'{"text": ""}', 400, "empty_text"),
        (b'{"text": " \\n\\t "}', 400, "empty_text"),
        (b'{"text": "\\ud800"}', 400, "invalid_text"),
        (
            b'{"instances": [{"text": "a"}, {"text": "a"}, {"text": "a"}, {"text": "a"}]}',
            413,
            "too_many_instances",
        ),
        (json.dumps({"text": "x" * 51}).encode(), 413, "text_too_long"),
        (b" " * 2001, 413, "body_too_large"),
    ],
)
def test_bad_bodies(body: bytes, status: int, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_texts(body, LIMITS)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message


def test_error_names_the_bad_instance() -> None:
    with pytest.raises(ApiError, match=r"instances\[1\]"):
        _parse({"instances": [{"text": "ok"}, {"text": 1}]})


def test_limits_are_inclusive() -> None:
    assert _parse({"instances": [{"text": "x" * 50}] * 3}) == ["x" * 50] * 3


@pytest.mark.parametrize(
    ("mimetype", "params", "ok"),
    [
        ("application/json", {}, True),
        ("application/json", {"charset": "UTF-8"}, True),
        ("application/vnd.api+json", {}, True),
        ("text/plain", {}, False),
        ("", {}, False),
        ("application/x-www-form-urlencoded", {}, False),
        ("application/json", {"charset": "latin-1"}, False),
    ],
)
def test_content_type(mimetype: str, params: dict[str, str], ok: bool) -> None:
    if ok:
        check_content_type(mimetype, params)
    else:
        with pytest.raises(ApiError) as caught:
            check_content_type(mimetype, params)
        assert caught.value.status == 415
