"""The function source zip Terraform deploys (build/function.zip, `make function-zip`) is complete,
reproducible, installs from its own requirements.txt into a clean virtual environment and serves."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.function_server import deployed_function
from testing.processes import free_port, stop_process
from tools.build_function_zip import build_zip

START_TIMEOUT_S = 60


def test_zip_holds_the_function_and_its_contract_and_no_build_debris(tmp_path: Path) -> None:
    names = set(zipfile.ZipFile(build_zip(tmp_path / "function.zip")).namelist())
    assert {
        "main.py",
        "requirements.txt",
        "artifact_store/gcs.py",
        "job_config/__init__.py",
        "prediction_log/logger.py",
        "prediction_log/prediction_log.schema.json",
        "production_pointer/__init__.py",
        "serving_core/bundle.py",
        "serving_core/model.py",
    } <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "../"))]


def test_zip_is_reproducible(tmp_path: Path) -> None:
    """Same sources, same bytes: Terraform's content-hashed object name changes only with code."""
    first = build_zip(tmp_path / "a.zip").read_bytes()
    second = build_zip(tmp_path / "b.zip").read_bytes()
    assert first == second


def _request(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def installed_zip(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(unzipped source, clean venv with only its requirements.txt installed), made by the helper
    the serving benchmark runs the function with."""
    deployed = deployed_function(tmp_path / "deployed")
    yield deployed.source, deployed.python.parent.parent


@pytest.mark.slow
def test_zip_installs_in_a_clean_venv_and_serves_a_prediction(
    installed_zip: tuple[Path, Path], tiny_store: Path, tmp_path: Path
) -> None:
    source, venv = installed_zip
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    packages = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert "functions-framework" in packages and "onnxruntime" in packages
    assert not {"torch", "transformers", "scikit-learn", "pandas"} & packages

    port = free_port()
    # Nothing from the repository: no PYTHONPATH, the unzipped folder as working directory.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        MODEL_URI=str(tiny_store / "models" / "production.json"),
        PREDICTION_LOG="none",
        DEAD_LETTER_URI=str(tmp_path / "dead_letter"),
        BUNDLE_CACHE_DIR=str(tmp_path / "bundle-cache"),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    log_path = tmp_path / "function.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                str(venv / "bin" / "functions-framework"),
                "--target=predict",
                "--source=main.py",
                "--host=127.0.0.1",
                f"--port={port}",
            ],
            cwd=source,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert server.poll() is None, f"function exited:\n{log_path.read_text()}"
            try:
                status, _ = _request(url)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"no answer:\n{log_path.read_text()}"
                time.sleep(0.1)
        assert status == 200

        status, answer = _request(url, {"instances": [{"text": "Vaccines contain microchips."}]})
        assert status == 200, answer
        manifest_version = json.loads((tiny_store / "models" / "production.json").read_text())
        assert answer["model_version"] == manifest_version["version"]
        [prediction] = answer["predictions"]
        assert prediction["label"] in ("real", "fake")
        assert abs(sum(prediction["probabilities"].values()) - 1.0) < 1e-5
    finally:
        stop_process(server)
