"""The logger's settings, read from the environment in one place.

Order: the value given by the caller (the function passes its validated config), else the
environment variable, else the default below. `from_env(strict=True)` refuses a bad value (the
function fails at startup, so a deploy with a typo never serves); `strict=False` logs it and
keeps the default (a logger made outside the function must not take anything down).

    PREDICTION_LOG              sink URI (prediction_log.sinks)        duckdb://local/predictions.duckdb
    DEAD_LETTER_URI             folder or gs://bucket/prefix           local/dead_letter
    LOG_TEXT                    keep the text column                   off
    PREDICTION_LOG_BATCH_ROWS   rows per write (and flush trigger)     500
    PREDICTION_LOG_MAX_AGE_S    oldest buffered row's age to flush     1.0
    PREDICTION_LOG_BUFFER_ROWS  most rows held in memory               10000
    PREDICTION_LOG_BUFFER_BYTES most row bytes held in memory          8388608 (8 MiB)

The two buffer bounds only matter for the background sink (bq://): when the backend
is slower than the traffic, rows past either bound are written to the dead letter by the
request that brought them (see logger.py), instead of growing the process until it is killed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

DEFAULT_PREDICTION_LOG = "duckdb://local/predictions.duckdb"
DEFAULT_DEAD_LETTER_URI = "local/dead_letter"

T = TypeVar("T")
_log = logging.getLogger("prediction_log")
_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS |= {"0": False, "false": False, "no": False, "off": False, "": False}


@dataclass(frozen=True)
class LogSettings:
    sink_uri: str = DEFAULT_PREDICTION_LOG
    dead_letter_uri: str = DEFAULT_DEAD_LETTER_URI
    log_text: bool = False
    batch_rows: int = 500
    max_age_s: float = 1.0
    buffer_rows: int = 10_000
    buffer_bytes: int = 8 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, strict: bool = True) -> LogSettings:
        read = _Reader(os.environ if env is None else env, strict)
        default = cls()
        return cls(
            sink_uri=read("PREDICTION_LOG", default.sink_uri, str),
            dead_letter_uri=read("DEAD_LETTER_URI", default.dead_letter_uri, str),
            log_text=read("LOG_TEXT", default.log_text, _flag),
            batch_rows=read("PREDICTION_LOG_BATCH_ROWS", default.batch_rows, _positive_int),
            max_age_s=read("PREDICTION_LOG_MAX_AGE_S", default.max_age_s, _positive),
            buffer_rows=read("PREDICTION_LOG_BUFFER_ROWS", default.buffer_rows, _positive_int),
            buffer_bytes=read("PREDICTION_LOG_BUFFER_BYTES", default.buffer_bytes, _positive_int),
        )


class _Reader:
    def __init__(self, env: Mapping[str, str], strict: bool) -> None:
        self.env = env
        self.strict = strict

    def __call__(self, name: str, fallback: T, parse: Callable[[str], T]) -> T:
        raw = self.env.get(name, "").strip()
        if not raw:
            return fallback
        try:
            return parse(raw)
        except ValueError as exc:
            if self.strict:
                raise ValueError(f"{name}={raw!r}: {exc}") from None
            _log.error("prediction log: %s=%r (%s); using %s", name, raw, exc, fallback)
            return fallback


def _flag(raw: str) -> bool:
    try:
        return _FLAGS[raw.lower()]
    except KeyError:
        raise ValueError("not a boolean (0/1, true/false)") from None


def _positive(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be > 0")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be >= 1")
    return value
