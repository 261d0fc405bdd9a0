"""The logger's settings, read from the environment in one place.

Order (job_config.read): the value given by the caller (the function passes its validated
config), else the environment variable, else the default below. `from_env(strict=True)` refuses a
bad value (the function fails at startup, so a deploy with a typo never serves);
`strict=False` logs it and keeps the default (a logger made outside the function must not take
anything down).

    PREDICTION_LOG              sink URI (prediction_log.sinks)        DEFAULT_PREDICTION_LOG
    DEAD_LETTER_URI             folder or gs://bucket/prefix           DEFAULT_DEAD_LETTER_URI
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

from job_config import SettingError, parse_bool, positive_float, positive_int, read

# The one definition of the local default; monitoring, the function, tools/demo.py and the docs
# use this name (mk/monitoring.mk keeps the literal for the shell; tests/monitoring checks they
# agree).
DEFAULT_PREDICTION_LOG = "duckdb://local/predictions.duckdb"
DEFAULT_DEAD_LETTER_URI = "local/dead_letter"

T = TypeVar("T")
_log = logging.getLogger("prediction_log")


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
        env = os.environ if env is None else env
        default = cls()

        def setting(name: str, parse: Callable[[str], T], fallback: T) -> T:
            try:
                return read(name, parse, fallback, env=env)
            except SettingError as exc:
                if strict:
                    raise
                _log.error("prediction log: %s; using %s", exc, fallback)
                return fallback

        return cls(
            sink_uri=setting("PREDICTION_LOG", str, default.sink_uri),
            dead_letter_uri=setting("DEAD_LETTER_URI", str, default.dead_letter_uri),
            log_text=setting("LOG_TEXT", parse_bool, default.log_text),
            batch_rows=setting("PREDICTION_LOG_BATCH_ROWS", positive_int, default.batch_rows),
            max_age_s=setting("PREDICTION_LOG_MAX_AGE_S", positive_float, default.max_age_s),
            buffer_rows=setting("PREDICTION_LOG_BUFFER_ROWS", positive_int, default.buffer_rows),
            buffer_bytes=setting("PREDICTION_LOG_BUFFER_BYTES", positive_int, default.buffer_bytes),
        )
