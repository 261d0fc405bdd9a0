"""Docs cannot rot: every shell command in the README and docs/ is checked against the project.

- the quick start is exactly the two commands, and .ci/run calls the same test command;
- every `make TARGET` names a real target, every `bash|python SCRIPT` a real file;
- every `python -m train_job ...` parses with the job's real argument parser;
- every `python -m export|monitoring SUBCOMMAND` names a real subcommand;
- every `terraform ... output NAME` names a real Terraform output;
- blocks marked `<!-- test: run -->` are executed (in a scratch store), and must exit 0.
The function's `curl` snippets are executed against the served function in tests/functions.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "sql/README.md"]
DOCS += [ROOT / "functions/predict/README.md"]
FENCE = re.compile(
    r"(<!-- test: (\w+) -->\n)?^[ \t]*```(?:bash|sh|shell)\n(.*?)\n[ \t]*```", re.DOTALL | re.M
)


def _blocks(path: Path) -> list[tuple[str | None, str]]:
    return [(m.group(2), textwrap.dedent(m.group(3))) for m in FENCE.finditer(path.read_text())]


def _commands(block: str) -> list[str]:
    """Shell lines with continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines, pending = [], ""
    for line in joined.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:  # a quoted argument (a JSON body, say) may span lines
            shlex.split(pending, comments=True)
        except ValueError:
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            lines.append(pending.split(" #", 1)[0].strip())
        pending = ""
    return lines


def _make_targets() -> set[str]:
    text = "\n".join(
        p.read_text() for p in [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]
    )
    return set(re.findall(r"^([a-zA-Z0-9_.-]+):", text, re.MULTILINE))


ALL_COMMANDS = [
    pytest.param(cmd, id=f"{path.relative_to(ROOT)}:{cmd[:50]}")
    for path in DOCS
    if path.exists()
    for _, block in _blocks(path)
    for cmd in _commands(block)
]


def test_quick_start_is_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)\n```", section, re.DOTALL).group(1)
    assert block.splitlines() == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci/run").read_text()


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_documented_command_is_real(command: str) -> None:
    words = shlex.split(command.replace("$(", "(").replace(")", " ) "), comments=False)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words = words[1:]  # VAR=value before the command
    if words[:1] in (["bash"], ["python"]) and len(words) > 1 and words[1].endswith((".sh", ".py")):
        assert (ROOT / words[1]).is_file(), f"no script {words[1]} in: {command}"
    if words[:1] == ["make"]:
        targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        assert targets, command
        missing = [t for t in targets if t not in _make_targets()]
        assert not missing, f"unknown make target(s) {missing} in: {command}"
    elif words[:3] == ["python", "-m", "train_job"]:
        from train_job.config import resolve_config

        argv = [w for w in words[3:] if w != "--help"]
        resolve_config(argv, env={})  # raises SystemExit on an unknown flag
    elif words[:2] == ["python", "-m"] and words[2] in ("export", "monitoring"):
        sub = next((w for w in words[3:] if not w.startswith("-")), None)
        if sub is None:
            return
        result = subprocess.run(
            [sys.executable, "-m", words[2], sub, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{words[2]} has no subcommand {sub!r}: {result.stderr}"
    for name in re.findall(r"terraform -chdir=terraform output -raw (\w+)", command):
        outputs = (ROOT / "terraform/outputs.tf").read_text()
        assert f'output "{name}"' in outputs, f"no Terraform output {name}"


RUNNABLE = [
    pytest.param(block, id=f"{path.relative_to(ROOT)}#{i}")
    for path in DOCS
    if path.exists()
    for i, (marker, block) in enumerate(_blocks(path))
    if marker == "run"
]


@pytest.mark.parametrize("block", RUNNABLE)
def test_runnable_snippet_exits_0(block: str, tmp_path: Path) -> None:
    env = {**os.environ, "FND_STORE": str(tmp_path / "store"), "PYTHONPATH": str(ROOT)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_there_are_runnable_snippets() -> None:
    assert len(RUNNABLE) >= 2
