"""The prediction function served as the platform serves it: `functions-framework --target
predict` in a subprocess on a free 127.0.0.1 port, from the repository's source or from the
source zip Terraform uploads, unpacked into a virtual environment of its own."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testing.paths import FUNCTION_DIR, ROOT
from testing.processes import free_port, stop_process

START_TIMEOUT_S = 30.0


def function_module_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default os.environ) for a subprocess that imports the function's modules (main,
    _config, ...): they are top-level names because functions-framework puts the function's
    folder on sys.path, and PYTHONPATH set to that folder imitates the platform; it is not a
    path change of the repository's own."""
    return {**(os.environ if env is None else env), "PYTHONPATH": str(FUNCTION_DIR)}


def function_config_value(expression: str) -> Any:
    """`expression` over the function's _config module (`DEFAULTS["THREADS"]`,
    `ServeConfig.from_env({}).solo_ort_threads`), as JSON from a fresh interpreter that imports
    _config as functions-framework does: what the function computes on this machine."""
    done = subprocess.run(
        [sys.executable, "-c", f"import json, _config; print(json.dumps(_config.{expression}))"],
        env=function_module_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@dataclass
class ServedFunction:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.perf_counter)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_up(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the server accepts connections. A TCP connect, not a GET: GET is the readiness
        check and loads the model, which the callers want to see happen (or time) themselves."""
        port = int(self.url.rstrip("/").rsplit(":", 1)[1])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"functions-framework exited early:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"functions-framework did not answer in {timeout_s} s:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.process)


def launch_function(
    env: dict[str, str],
    log_path: Path,
    source: Path = FUNCTION_DIR / "main.py",
    python: Path | str = sys.executable,
    stdout_pipe: bool = False,
) -> ServedFunction:
    """Start `functions-framework --target predict` on a free 127.0.0.1 port (returns at once).

    PREDICTION_LOG defaults to none and BUNDLE_CACHE_DIR to a folder beside the log; `env` wins.
    `source` is the product's main.py unless a benchmark serves another function the same way;
    `python` the interpreter (and so the libraries) it runs with: this one unless a benchmark
    serves the function as deployed (`deployed_function`). With `stdout_pipe` the output goes
    to a pipe (process.stdout) that the caller must read, into log_path if log() is to see it.
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
                str(python),
                "-m",
                "functions_framework",
                "--target",
                "predict",
                "--source",
                str(source),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE if stdout_pipe else log_file,
            stderr=subprocess.STDOUT,
        )
    return ServedFunction(
        url=f"http://127.0.0.1:{port}/", process=process, log_path=log_path, started_at=started_at
    )


BENCH_FUNCTION_DIR = ROOT / "build" / "bench-function"


@dataclass(frozen=True)
class DeployedFunction:
    """The function as Cloud Functions gets it: the source zip Terraform uploads, unpacked, and
    a virtual environment holding only the zip's requirements.txt (no training or notebook
    libraries that an import could pick up on the way: google-cloud-bigquery imports pandas
    whenever it is installed)."""

    source: Path  # the unpacked zip; main.py is its entry point
    python: Path  # the environment's interpreter


def deployed_function(build_dir: Path = BENCH_FUNCTION_DIR) -> DeployedFunction:
    """Build the zip (tools/build_function_zip.py), unpack it under build_dir and compile it to
    bytecode; install its requirements.txt into a venv kept there per requirements hash, so only
    a new lock reinstalls (about a minute). The install is the platform's `pip install -r`, with
    the pip `python -m venv` brings, from the lock's own files and a stand-in next release of each
    (tools/locked_install.py), then `pip check`: what a build gets whatever upstream publishes."""
    from tools.build_function_zip import build_zip
    from tools.locked_install import builder_env, locked_wheelhouse, pip_install

    source = build_dir / "source"
    shutil.rmtree(source, ignore_errors=True)
    zipfile.ZipFile(build_zip(build_dir / "function.zip")).extractall(source)
    lock = source / "requirements.txt"
    venv = build_dir / f"venv-{hashlib.sha256(lock.read_bytes()).hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        wheelhouse = locked_wheelhouse(lock, venv / "wheelhouse", python)
        done = pip_install(python, lock, wheelhouse)
        if done.returncode != 0:
            raise RuntimeError(f"pip install of the function's requirements:\n{done.stderr}")
        check = subprocess.run(
            [str(python), "-m", "pip", "check"],
            capture_output=True,
            text=True,
            timeout=60,
            env=builder_env(),
        )
        if check.returncode != 0:
            raise RuntimeError(f"pip check of the function's venv:\n{check.stdout}")
        (venv / ".installed").touch()
    # As the Functions Framework buildpack does at deploy (`python3 -m compileall -f -q .`), so
    # an instance imports bytecode instead of compiling the function's modules at every start.
    subprocess.run([str(python), "-m", "compileall", "-f", "-q", str(source)], check=True)
    return DeployedFunction(source=source, python=python)


def serve_function(env: dict[str, str], log_path: Path) -> ServedFunction:
    """launch_function, then wait until it answers."""
    served = launch_function(env, log_path)
    served.wait_until_up()
    return served
