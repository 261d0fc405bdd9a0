"""bqemulator, the BigQuery emulator, as a subprocess on 127.0.0.1 that tests and the chaos suite
can stop and restart, and the serving benchmarks log into."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from testing.processes import free_port

# bqemulator 1.4.0 runs `INSTALL spatial` at start-up, which downloads from the internet unless
# the extension is already in DuckDB's extension folder. The duckdb-extension-spatial / -avro
# wheels ship the binaries at duckdb_extension_<name>/extensions/v<duckdb>/<name>.duckdb_extension;
# `INSTALL '<that file>'` copies it into the extension folder, after which bqemulator's plain
# `INSTALL spatial` is a no-op. Done only when not installed yet, so it is idempotent.

EXTENSIONS = ("spatial", "avro")


def install_duckdb_extensions() -> None:
    import duckdb  # lazy: only the emulator needs it

    con = duckdb.connect()
    try:
        installed = {
            name
            for name, ok in con.execute(
                "SELECT extension_name, installed FROM duckdb_extensions()"
            ).fetchall()
            if ok
        }
        for name in EXTENSIONS:
            if name in installed:
                continue
            package = importlib.import_module(f"duckdb_extension_{name}")
            folder = Path(package.__path__[0]) / "extensions" / f"v{duckdb.__version__}"
            binary = folder / f"{name}.duckdb_extension"
            if not binary.is_file():
                raise RuntimeError(f"{binary} missing: install duckdb-extension-{name}")
            con.execute(f"INSTALL '{binary}'")
    finally:
        con.close()


class BigQueryEmulator:
    """bqemulator on free 127.0.0.1 ports, its data in `data_dir` (kept across restarts)."""

    def __init__(self, data_dir: Path, project: str = "test-project", nice: int = 0) -> None:
        self.data_dir = data_dir
        self.project = project
        # A benchmark gives the emulator the lowest priority: it stands for BigQuery, whose CPU
        # is Google's, not the function instance's, and must not steal the measured server's.
        self.nice = nice
        self.port = free_port()
        self.grpc_port = free_port()
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        install_duckdb_extensions()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self._proc = subprocess.Popen(
            [
                sys.executable, "-m", "bqemulator", "start",
                "--rest-host", "127.0.0.1", "--rest-port", str(self.port),
                "--grpc-host", "127.0.0.1", "--grpc-port", str(self.grpc_port),
                "--project", self.project,
                "--data-dir", str(self.data_dir),  # persistent: rows survive a restart
                "--log-level", "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None,
        )  # fmt: skip
        log.close()
        url = f"http://{self.host}/bigquery/v2/projects/{self.project}/datasets"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"bqemulator exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"bqemulator not ready in {timeout}s: {self.log_path}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the emulator has used so far."""
        import psutil

        assert self._proc is not None
        times = psutil.Process(self._proc.pid).cpu_times()
        return round(times.user + times.system, 2)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None
