"""job_config: flag, then environment variable, then the job's fallback, for any dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import job_config


@dataclass
class Settings:
    name: str = field(default="plain", metadata={"help": "a name"})
    count: int = 3
    rate: float = 0.5
    shuffle: bool = True


def resolve(argv: list[str], env: dict[str, str], **kw) -> dict:
    parser = job_config.build_parser(Settings, "prog", "what it does", "X_")
    return job_config.resolve(Settings, parser, argv, env, "X_", **kw)


def test_flag_beats_environment_beats_default() -> None:
    env = {"X_COUNT": "7", "X_RATE": "0.25", "X_NAME": ""}
    values = resolve(["--count", "9"], env)
    assert values == {"name": "plain", "count": 9, "rate": 0.25, "shuffle": True}


def test_booleans_from_flags_and_environment() -> None:
    assert resolve(["--no-shuffle"], {"X_SHUFFLE": "yes"})["shuffle"] is False
    assert resolve([], {"X_SHUFFLE": "off"})["shuffle"] is False
    assert resolve([], {"X_SHUFFLE": "ON"})["shuffle"] is True


def test_fallback_replaces_the_default_only() -> None:
    profile = {"count": 100}
    values = resolve(
        [], {"X_RATE": "1"}, fallback=lambda f: profile.get(f.name, job_config.field_default(f))
    )
    assert (values["count"], values["rate"], values["name"]) == (100, 1.0, "plain")


@pytest.mark.parametrize(("variable", "value"), [("X_COUNT", "many"), ("X_SHUFFLE", "maybe")])
def test_a_bad_environment_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SystemExit, match=variable):
        resolve([], {variable: value})


def test_a_bad_or_abbreviated_flag_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--count", "many"], ["--cou", "3"]):
        with pytest.raises(SystemExit) as exited:
            resolve(argv, {})
        assert exited.value.code == 2
    assert "X_COUNT" in job_config.build_parser(Settings, "p", "d", "X_").format_help()
