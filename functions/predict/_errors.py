"""Errors the function answers with, and the JSON body every error response carries.

Every error a caller can see is an ``ApiError``: a status, a stable machine-readable ``code`` and a
human message. Anything else that escapes a request becomes a 500 in ``main`` (logged with its
traceback server-side, never shown to the caller).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with an HTTP status that is safe to show to the caller."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(400, code, message)


class PayloadTooLarge(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(413, code, message)


class UnsupportedMediaType(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(415, "unsupported_media_type", message)


class MethodNotAllowed(ApiError):
    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(
            405,
            "method_not_allowed",
            f"method {method} is not allowed; use one of {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )


class ModelUnavailable(ApiError):
    """The bundle could not be fetched, verified or loaded; a later request retries."""

    def __init__(self, message: str) -> None:
        # Retry-After asks clients to come back later rather than hammer a broken instance.
        super().__init__(503, "model_unavailable", message, headers={"Retry-After": "5"})


def error_body(code: str, message: str, request_id: str) -> dict[str, Any]:
    """The JSON body of every error response: ``{"error": {"code", "message"}, "request_id"}``."""
    return {"error": {"code": code, "message": message}, "request_id": request_id}
