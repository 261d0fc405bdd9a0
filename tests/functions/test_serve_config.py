"""Settings: environment first, then documented defaults; bad values fail at startup. The
reader itself (order, blanks, boolean spellings) is tested in tests/job_settings/."""

from __future__ import annotations

from pathlib import Path

import pytest
from _config import DEFAULTS, ConfigError, ServeConfig, apply_server_defaults

from prediction_log.settings import LogSettings


def test_defaults_when_environment_is_empty() -> None:
    config = ServeConfig.from_env({})
    assert config.model_uri == DEFAULTS["MODEL_URI"] == "local/store/models/production.json"
    assert config.max_instances == int(DEFAULTS["MAX_INSTANCES"])
    assert config.ort_intra_op_threads == int(DEFAULTS["ORT_INTRA_OP_THREADS"])
    assert config.threads == int(DEFAULTS["THREADS"])
    assert config.load_retry_seconds == float(DEFAULTS["LOAD_RETRY_SECONDS"])


def test_environment_overrides_defaults() -> None:
    env = {
        "MODEL_URI": "gs://b/models/production.json",
        "MAX_INSTANCES": "5",
        "MAX_TEXT_CHARS": "10",
        "MAX_BODY_BYTES": "100",
        "ORT_INTRA_OP_THREADS": "3",
        "THREADS": "7",
        "LOAD_RETRY_SECONDS": "0",
        "PREDICTION_LOG": "none",
        "ORT_ALLOW_SPINNING": "true",
    }
    config = ServeConfig.from_env(env)
    assert config.model_uri == "gs://b/models/production.json"
    assert (config.max_instances, config.max_text_chars, config.max_body_bytes) == (5, 10, 100)
    assert (config.ort_intra_op_threads, config.threads) == (3, 7)
    assert config.load_retry_seconds == 0.0
    assert config.log.sink_uri == "none"
    assert config.ort_allow_spinning is True
    assert ServeConfig.from_env({}).ort_allow_spinning is False


def test_blank_value_means_default() -> None:
    assert ServeConfig.from_env({"MAX_INSTANCES": "  "}).max_instances == int(
        DEFAULTS["MAX_INSTANCES"]
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_INSTANCES", "many"),
        ("MAX_TEXT_CHARS", "0"),
        ("THREADS", "-1"),
        ("LOAD_RETRY_SECONDS", "-2"),
        ("ORT_ALLOW_SPINNING", "maybe"),
    ],
)
def test_bad_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        ServeConfig.from_env({name: value})


def test_threads_default_is_given_to_functions_framework_unless_set() -> None:
    env: dict[str, str] = {}
    apply_server_defaults(env)
    assert env["THREADS"] == DEFAULTS["THREADS"]
    env = {"THREADS": "9"}
    apply_server_defaults(env)
    assert env["THREADS"] == "9"


def test_prediction_log_settings_are_read_in_the_same_order() -> None:
    config = ServeConfig.from_env(
        {"PREDICTION_LOG_BUFFER_ROWS": "123", "PREDICTION_LOG_BUFFER_BYTES": "4567"}
    )
    assert (config.log.buffer_rows, config.log.buffer_bytes) == (123, 4567)
    assert ServeConfig.from_env({}).log == LogSettings()
    assert ServeConfig.from_env({}).log.sink_uri == DEFAULTS["PREDICTION_LOG"]
    assert str(LogSettings().buffer_rows) == DEFAULTS["PREDICTION_LOG_BUFFER_ROWS"]
    with pytest.raises(ConfigError, match="PREDICTION_LOG_BUFFER_ROWS"):
        ServeConfig.from_env({"PREDICTION_LOG_BUFFER_ROWS": "0"})
    with pytest.raises(ConfigError, match="PREDICTION_LOG_BUFFER_BYTES"):
        ServeConfig.from_env({"PREDICTION_LOG_BUFFER_BYTES": "lots"})
    with pytest.raises(ConfigError, match="LOG_TEXT"):
        ServeConfig.from_env({"LOG_TEXT": "maybe"})


@pytest.mark.parametrize(("setting", "expected"), [("0", "0"), ("1", "1")])
def test_allow_spinning_reaches_the_onnxruntime_session(
    setting: str, expected: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    from _service import _load_model

    config = ServeConfig.from_env(
        {
            "MODEL_URI": str(tiny_bundle),
            "BUNDLE_CACHE_DIR": str(tmp_path),
            "ORT_ALLOW_SPINNING": setting,
            "ORT_INTRA_OP_THREADS": "2",
        }
    )
    options = _load_model(config).session.get_session_options()
    assert options.intra_op_num_threads == 2
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert options.get_session_config_entry(key) == expected
