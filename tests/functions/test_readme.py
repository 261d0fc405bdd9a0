"""The documented curl examples (the function's README and docs/predictions.md), run with bash
against the served function."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from testing.paths import FUNCTION_DIR

pytestmark = pytest.mark.slow
README_URL = "http://127.0.0.1:8080/"
ROOT = FUNCTION_DIR.parents[1]
READMES = [FUNCTION_DIR / "README.md", ROOT / "docs" / "predictions.md"]


def _curl_snippet(readme: Path) -> str:
    found = re.search(r"<!-- test: curl -->\n```bash\n(.*?)\n```", readme.read_text(), re.DOTALL)
    assert found, f"{readme} has no ```bash block marked <!-- test: curl -->"
    return found.group(1)


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_curl_snippet_works(served_tiny, readme: Path) -> None:
    snippet = _curl_snippet(readme)
    assert README_URL in snippet
    result = subprocess.run(
        ["bash", "-c", snippet.replace(README_URL, served_tiny.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body = json.loads(result.stdout)
    assert len(body["predictions"]) == snippet.count('"text"')
    assert all(p["label"] in ("real", "fake") for p in body["predictions"])
    assert body["model_version"]
