"""Turn a raw POST body into the list of texts to predict, or an ApiError saying what is wrong.

Accepted bodies (JSON, UTF-8):
  {"instances": [{"text": "..."}, ...]}   the Vertex AI online-prediction shape (extra keys such as
                                          "parameters", or extra keys in an instance, are ignored)
  {"text": "..."}                         a single text
Status codes: 415 when the content type is not JSON; 400 for malformed JSON or a missing,
non-string or empty text; 413 when the body, the number of instances or one text is over its limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from _errors import BadRequest, PayloadTooLarge, UnsupportedMediaType


@dataclass(frozen=True)
class Limits:
    max_instances: int
    max_text_chars: int
    max_body_bytes: int


def check_content_type(mimetype: str, params: Mapping[str, str]) -> None:
    mimetype = mimetype.lower()
    if not (mimetype == "application/json" or mimetype.endswith("+json")):
        shown = mimetype or "none"
        raise UnsupportedMediaType(f"content type must be application/json, got {shown}")
    charset = params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"charset must be utf-8, got {charset}")


def parse_texts(body: bytes, limits: Limits) -> list[str]:
    if len(body) > limits.max_body_bytes:
        raise PayloadTooLarge(
            "body_too_large", f"body is over the limit of {limits.max_body_bytes} bytes"
        )
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("invalid_json", "body is not valid UTF-8") from None
    except RecursionError:
        raise BadRequest("invalid_json", "body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest("invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("invalid_request", 'body must be a JSON object with "instances" or "text"')
    if "instances" in payload and "text" in payload:
        raise BadRequest("invalid_request", 'give either "instances" or "text", not both')
    if "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise BadRequest("invalid_request", '"instances" must be a list')
        if not instances:
            raise BadRequest("invalid_request", '"instances" must not be empty')
        if len(instances) > limits.max_instances:
            raise PayloadTooLarge(
                "too_many_instances",
                f"{len(instances)} instances is over the limit of {limits.max_instances}",
            )
        return [
            _text_of(instance, f"instances[{i}]", limits) for i, instance in enumerate(instances)
        ]
    if "text" in payload:
        return [_text_of(payload, "body", limits)]
    raise BadRequest("invalid_request", 'body must have "instances" or "text"')


def _text_of(instance: Any, where: str, limits: Limits) -> str:
    if not isinstance(instance, dict):
        raise BadRequest("invalid_instance", f'{where} must be an object with a "text" field')
    if "text" not in instance:
        raise BadRequest("missing_text", f'{where} has no "text"')
    text = instance["text"]
    if not isinstance(text, str):
        raise BadRequest("invalid_text", f"{where}.text must be a string")
    if not text.strip():
        raise BadRequest("empty_text", f"{where}.text is empty")
    if len(text) > limits.max_text_chars:
        raise PayloadTooLarge(
            "text_too_long",
            f"{where}.text has {len(text)} characters, over the limit of {limits.max_text_chars}",
        )
    try:
        # JSON can carry lone surrogates ("\ud800") that no UTF-8 tokenizer or hash can take.
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("invalid_text", f"{where}.text is not valid Unicode") from None
    return text
