"""The README's curl example, run with bash against the served function."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.functions._served import FUNCTION_DIR

pytestmark = pytest.mark.slow
README_URL = "http://127.0.0.1:8080/"


def _curl_snippet() -> str:
    readme = (FUNCTION_DIR / "README.md").read_text()
    found = re.search(r"<!-- test: curl -->\n```bash\n(.*?)\n```", readme, re.DOTALL)
    assert found, "README.md has no ```bash block marked <!-- test: curl -->"
    return found.group(1)


def test_readme_curl_snippet_works(served_tiny) -> None:
    snippet = _curl_snippet()
    assert README_URL in snippet
    result = subprocess.run(
        ["bash", "-c", snippet.replace(README_URL, served_tiny.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body = json.loads(result.stdout)
    assert len(body["predictions"]) == 2
    assert all(p["label"] in ("real", "fake") for p in body["predictions"])
    assert body["model_version"]
