"""The batch jobs' settings (train_job, score_job) from one typed dataclass each.

Every field of the dataclass is a command-line flag (``--field-name``) and an environment
variable (``<PREFIX>FIELD_NAME``), read in one order: the flag, then the variable, then the job's
fallback (the field's default, or a profile's value for it). A boolean field takes
``--flag``/``--no-flag`` and ``1/true/yes/on`` or ``0/false/no/off`` in the environment. A bad
value is an error that names the flag or variable, never a silent default.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields
from typing import Any


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def convert(kind: Any, value: str) -> Any:
    """A string from the environment as the field's type (annotations may be strings)."""
    if kind in (bool, "bool"):
        return parse_bool(value)
    if kind in (int, "int"):
        return int(value)
    if kind in (float, "float"):
        return float(value)
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


def resolve(
    config_class: type,
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    env: Mapping[str, str],
    env_prefix: str,
    fallback: Callable[[Field[Any]], Any] = field_default,
) -> dict[str, Any]:
    """Each field's value: its flag in `argv`, else its non-empty variable in `env`, else
    `fallback(field)`. Exits with an error naming the variable whose value does not parse."""
    args = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    for f in fields(config_class):
        if args.get(f.name) is not None:
            values[f.name] = args[f.name]
            continue
        raw = env.get(env_name(env_prefix, f))
        if raw is None or raw == "":
            values[f.name] = fallback(f)
            continue
        try:
            values[f.name] = convert(f.type, raw)
        except ValueError as e:
            raise SystemExit(f"error: {env_name(env_prefix, f)}: {e}") from e
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
        logging.getLogger(name).setLevel(os.environ.get("LOG_LEVEL", "INFO"))
