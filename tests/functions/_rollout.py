"""Helpers for the hot-reload tests: the function in-process (functions-framework's app, Flask test
client) and a second version whose answers differ from the first."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import functions_framework

from testing.paths import FUNCTION_DIR
from tests.conftest import wait_for_background_sessions

# Slack for fetching, verifying and loading the tiny bundle on two busy cores.
LOAD_BUDGET_S = 10.0


def start_in_process(env: dict[str, str], monkeypatch: Any) -> tuple[Any, ModuleType]:
    """The function as functions-framework builds it; returns (app, its main module)."""
    wait_for_background_sessions()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = functions_framework.create_app("predict", str(FUNCTION_DIR / "main.py"))
    return app, sys.modules["main"]


def add_version(store: Path, version: str) -> Path:
    """Copy the production bundle under `version` with three times its temperature (so its
    probabilities differ) and a manifest that lists the same files. Not promoted."""
    current = json.loads((store / "models" / "production.json").read_text())["version"]
    bundle = store / "models" / version
    shutil.copytree(store / "models" / current, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["version"] = version
    manifest["calibration"]["temperature"] *= 3
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def point_at(store: Path, version: str) -> None:
    """Move the pointer by hand (no completeness check): what a store that breaks after the
    promotion looks like to the function."""
    pointer = {"version": version, "promoted_at": "2099-01-01T00:00:00Z", "previous": None}
    (store / "models" / "production.json").write_text(json.dumps(pointer))


def wait_for(condition: Callable[[], bool], timeout_s: float, step_s: float = 0.02) -> float:
    """Seconds until `condition()` held; fails the test after `timeout_s`."""
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < timeout_s, f"condition not met within {timeout_s} s"
        time.sleep(step_s)
    return time.monotonic() - started
