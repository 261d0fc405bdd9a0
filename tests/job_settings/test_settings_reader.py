"""job_config.read and parse_bool: the one reader and the one boolean parser of every
deployable's settings (the function's config, the prediction log's settings, monitoring's flags,
the batch jobs' dataclasses)."""

from __future__ import annotations

import pytest

import job_config
from job_config import SettingError, parse_bool, read


@pytest.mark.parametrize("spelling", ["1", "true", "yes", "on", "TRUE", "Yes", " on "])
def test_true_spellings(spelling: str) -> None:
    assert parse_bool(spelling) is True


@pytest.mark.parametrize("spelling", ["0", "false", "no", "off", "FALSE", "No", " off "])
def test_false_spellings(spelling: str) -> None:
    assert parse_bool(spelling) is False


@pytest.mark.parametrize("spelling", ["", "maybe", "y", "n", "t", "f", "2", "enabled"])
def test_anything_else_is_not_a_boolean(spelling: str) -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool(spelling)


def test_given_beats_environment_beats_default() -> None:
    env = {"COUNT": "7"}
    assert read("COUNT", int, 3, given=9, env=env) == 9
    assert read("COUNT", int, 3, env=env) == 7
    assert read("COUNT", int, 3, env={}) == 3


def test_a_given_false_or_zero_still_wins() -> None:
    """Only None means "not given": False and 0 are values."""
    assert read("FLAG", parse_bool, True, given=False, env={"FLAG": "1"}) is False
    assert read("COUNT", int, 3, given=0, env={"COUNT": "7"}) == 0


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_a_blank_variable_counts_as_unset(blank: str) -> None:
    assert read("NAME", str, "fallback", env={"NAME": blank}) == "fallback"
    assert read("FLAG", parse_bool, True, env={"FLAG": blank}) is True


def test_a_set_variable_is_stripped_before_parsing() -> None:
    assert read("NAME", str, "x", env={"NAME": "  gs://bucket/p  "}) == "gs://bucket/p"
    assert read("FLAG", parse_bool, False, env={"FLAG": " Yes\n"}) is True


def test_the_default_is_returned_as_given_not_parsed() -> None:
    assert read("PATHS", str.split, ["a", "b"], env={}) == ["a", "b"]


@pytest.mark.parametrize(
    ("parse", "value", "reason"),
    [
        (parse_bool, "maybe", "not a boolean"),
        (job_config.positive_int, "many", "not an integer"),
        (job_config.positive_int, "0", "must be >= 1"),
        (job_config.positive_float, "-1", "must be > 0"),
        (job_config.positive_float, "lots", "not a number"),
        (job_config.non_negative_float, "-0.5", "must be >= 0"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable_and_value(parse, value, reason) -> None:
    with pytest.raises(SettingError, match=rf"^SOME_SETTING='{value}': {reason}"):
        read("SOME_SETTING", parse, None, env={"SOME_SETTING": value})


def test_a_setting_error_is_a_value_error() -> None:
    """Callers that caught ValueError before there was one reader still catch it."""
    assert issubclass(SettingError, ValueError)


def test_numbers_at_their_bounds() -> None:
    assert job_config.positive_int("1") == 1
    assert job_config.non_negative_float("0") == 0.0
    assert job_config.positive_float("0.001") == 0.001


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FND_TEST_READER", "on")
    assert read("FND_TEST_READER", parse_bool, False) is True
    monkeypatch.delenv("FND_TEST_READER")
    assert read("FND_TEST_READER", parse_bool, False) is False
