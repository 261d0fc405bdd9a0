"""The prediction log's settings: one reader for the function and monitoring (flag or caller's
value, then environment, then default), strict in the function and lenient elsewhere, and one
default log URI that the Makefile and the docs repeat only where a shell or a reader needs it."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from monitoring.cli import _parser
from prediction_log.settings import DEFAULT_DEAD_LETTER_URI, DEFAULT_PREDICTION_LOG, LogSettings

ROOT = Path(__file__).resolve().parents[2]


def test_environment_then_default() -> None:
    env = {"PREDICTION_LOG": "none", "LOG_TEXT": "Yes", "PREDICTION_LOG_MAX_AGE_S": " 0.5 "}
    settings = LogSettings.from_env(env)
    assert (settings.sink_uri, settings.log_text, settings.max_age_s) == ("none", True, 0.5)
    assert settings.dead_letter_uri == DEFAULT_DEAD_LETTER_URI
    assert LogSettings.from_env({"PREDICTION_LOG": "  "}) == LogSettings()
    assert LogSettings().sink_uri == DEFAULT_PREDICTION_LOG


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_TEXT", "maybe"),
        ("PREDICTION_LOG_BATCH_ROWS", "0"),
        ("PREDICTION_LOG_MAX_AGE_S", "-1"),
        ("PREDICTION_LOG_BUFFER_BYTES", "lots"),
    ],
)
def test_strict_refuses_a_bad_value_naming_it(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"{name}='{value}'"):
        LogSettings.from_env({name: value}, strict=True)


def test_lenient_logs_a_bad_value_and_keeps_the_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="prediction_log"):
        settings = LogSettings.from_env(
            {"LOG_TEXT": "maybe", "PREDICTION_LOG_BATCH_ROWS": "7"}, strict=False
        )
    assert settings == LogSettings(batch_rows=7)
    assert "LOG_TEXT='maybe'" in caplog.text


def test_monitoring_flag_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREDICTION_LOG", raising=False)
    monkeypatch.delenv("DEAD_LETTER_URI", raising=False)
    args = _parser().parse_args(["replay"])
    assert (args.log, args.dead_letter) == (DEFAULT_PREDICTION_LOG, DEFAULT_DEAD_LETTER_URI)
    monkeypatch.setenv("PREDICTION_LOG", "")  # blank: unset, as in the function
    assert _parser().parse_args(["replay"]).log == DEFAULT_PREDICTION_LOG
    monkeypatch.setenv("PREDICTION_LOG", "duckdb://elsewhere.duckdb")
    assert _parser().parse_args(["replay"]).log == "duckdb://elsewhere.duckdb"
    assert _parser().parse_args(["replay", "--log", "none"]).log == "none"


def test_the_makefile_and_the_docs_name_the_same_default_log() -> None:
    make_default = re.search(
        r"^PREDICTION_LOG \?= (\S+)$", (ROOT / "mk" / "monitoring.mk").read_text(), re.M
    )
    assert make_default and make_default.group(1) == DEFAULT_PREDICTION_LOG
    readme_row = re.search(
        r"^\| `PREDICTION_LOG` \| `([^`]+)` \|",
        (ROOT / "functions" / "predict" / "README.md").read_text(),
        re.M,
    )
    assert readme_row and readme_row.group(1) == DEFAULT_PREDICTION_LOG
    assert f"| `{DEFAULT_PREDICTION_LOG}` (default) |" in (ROOT / "docs/monitoring.md").read_text()
    predictions_doc = (ROOT / "docs" / "predictions.md").read_text()
    assert f"| `{DEFAULT_PREDICTION_LOG}` (local default) |" in predictions_doc
