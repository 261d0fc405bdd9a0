"""Settings from flags and the environment, read in one order for every deployable.

One order everywhere: the value the caller was given (a command-line flag, an argument), else the
environment variable, else the default. A variable that is unset or blank counts as absent; a set
one is stripped of surrounding blanks and parsed, and a value that does not parse is an error
that names the variable (SettingError), never a silent default. `read` is that order for one
setting; the prediction function's config, the prediction log's settings and monitoring's flags
use it directly (the function carries this package in its zip).

The batch jobs (train_job, score_job) describe their settings as one typed dataclass each: every
field is a command-line flag (``--field-name``) and an environment variable
(``<PREFIX>FIELD_NAME``), resolved by `resolve` in the same order, with the job's fallback (the
field's default, or a profile's value for it) last. A boolean field takes ``--flag``/``--no-flag``
on the command line; everywhere, a boolean variable takes ``1/true/yes/on`` or ``0/false/no/off``
in any case (`parse_bool`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields
from typing import Any, TypeVar

T = TypeVar("T")

TRUE_SPELLINGS = frozenset({"1", "true", "yes", "on"})
FALSE_SPELLINGS = frozenset({"0", "false", "no", "off"})


class SettingError(ValueError):
    """A variable whose value a setting cannot use; the message names the variable."""


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUE_SPELLINGS:
        return True
    if lowered in FALSE_SPELLINGS:
        return False
    raise ValueError("not a boolean (1/true/yes/on or 0/false/no/off)")


def integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("not an integer") from None


def number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("not a number") from None


def positive_int(value: str) -> int:
    parsed = integer(value)
    if parsed < 1:
        raise ValueError("must be >= 1")
    return parsed


def positive_float(value: str) -> float:
    parsed = number(value)
    if not parsed > 0:
        raise ValueError("must be > 0")
    return parsed


def non_negative_float(value: str) -> float:
    parsed = number(value)
    if not parsed >= 0:
        raise ValueError("must be >= 0")
    return parsed


def env_value(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable's value without surrounding blanks; None when it is unset or blank."""
    raw = (os.environ if env is None else env).get(name)
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def read(
    name: str,
    parse: Callable[[str], T],
    default: T,
    *,
    given: T | None = None,
    env: Mapping[str, str] | None = None,
) -> T:
    """One setting: `given` when the caller has a value (not None), else the variable `name` in
    `env` (os.environ when None) parsed by `parse`, else `default`. Raises SettingError naming
    the variable when `parse` refuses its value (any ValueError)."""
    if given is not None:
        return given
    raw = env_value(name, env)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise SettingError(f"{name}={raw!r}: {exc}") from None


def convert(kind: Any, value: str) -> Any:
    """A string from the environment as the field's type (annotations may be strings)."""
    if kind in (bool, "bool"):
        return parse_bool(value)
    if kind in (int, "int"):
        return integer(value)
    if kind in (float, "float"):
        return number(value)
    return value


def env_name(prefix: str, field: Field[Any]) -> str:
    return prefix + field.name.upper()


def build_parser(
    config_class: type, prog: str, description: str, env_prefix: str
) -> argparse.ArgumentParser:
    """One flag per field, every default None, so an unset flag can fall through to the
    environment; the help names each flag's variable."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,  # a misspelt flag is an error, never a silent prefix match
    )
    for f in fields(config_class):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} [env {env_name(env_prefix, f)}]"
        if f.type in (bool, "bool"):
            action: Any = argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=f.name, action=action, default=None, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)
    return parser


def field_default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise ValueError(f"{f.name} has no default")


# Stands for "no flag and no variable", so the fallback is only asked for a value it must give.
_ABSENT: Any = object()


def resolve(
    config_class: type,
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    env: Mapping[str, str],
    env_prefix: str,
    fallback: Callable[[Field[Any]], Any] = field_default,
) -> dict[str, Any]:
    """Each field's value, in `read`'s order: its flag in `argv`, else its variable in `env`,
    else `fallback(field)`. Exits with an error naming the variable whose value does not
    parse."""
    args = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    for f in fields(config_class):
        try:
            value = read(
                env_name(env_prefix, f),
                lambda raw, kind=f.type: convert(kind, raw),
                _ABSENT,
                given=args.get(f.name),
                env=env,
            )
        except SettingError as e:
            raise SystemExit(f"error: {e}") from e
        values[f.name] = fallback(f) if value is _ABSENT else value
    return values


def configure_logging(*own_loggers: str) -> None:
    """Plain lines on stderr: libraries only for warnings (the ONNX quantizer logs every tensor
    on the root logger), the job's own loggers at LOG_LEVEL (default INFO)."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in own_loggers:
        logging.getLogger(name).setLevel(read("LOG_LEVEL", str, "INFO"))
