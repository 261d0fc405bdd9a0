"""Docs cannot rot: every link and shell command in the README and docs/ is checked against the
project.

- the quick start is exactly the two commands, and .ci/run calls the same test command;
- every relative link resolves to a file or folder, and every #anchor to a heading there;
- every docs/ page is linked from the README;
- every `make TARGET` (in a block or inline) names a real target, every script path named
  (`bash|python SCRIPT`, `dir/x.py`, `python -m pkg.module`) a real file;
- every `python -m train_job ...` and `python -m score_job[.local] ...` parses with the job's real
  argument parser;
- every `python -m export|monitoring SUBCOMMAND` names a real subcommand;
- every `terraform ... output NAME` names a real Terraform output;
- blocks marked `<!-- test: run -->` are executed (in a scratch store), and must exit 0.
The function's `curl` snippets are executed against the served function in tests/functions.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "experiments").glob("*.md")),
    ROOT / "reports/archive/README.md",
    ROOT / "sql/README.md",
    ROOT / "functions/predict/README.md",
    ROOT / "testing/README.md",
]
FENCE = re.compile(
    r"(<!-- test: (\w+) -->\n)?^[ \t]*```(?:bash|sh|shell)\n(.*?)\n[ \t]*```", re.DOTALL | re.M
)
ANY_FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.DOTALL | re.M)
INLINE_CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M)
SCRIPT = re.compile(r"^[\w.-]+(?:/[\w.-]+)+\.(?:py|sh)$")
MODULE = re.compile(r"python -m ([A-Za-z_][\w.]*)")


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


def _prose(text: str) -> str:
    """The markdown without its fenced blocks."""
    return ANY_FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def broken_links(path: Path) -> list[str]:
    """Relative links in `path` whose file, folder or #anchor does not exist."""
    prose = INLINE_CODE.sub("", _prose(path.read_text()))
    broken = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md":
            headings = HEADING.findall(_prose(linked.read_text()))
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    return broken


def _inline_commands(path: Path) -> list[str]:
    return [" ".join(code.split()) for code in INLINE_CODE.findall(_prose(path.read_text()))]


def unknown_make_targets(command: str, targets: set[str]) -> list[str]:
    """The targets of a `make ...` command that no makefile defines (`bench-*` must match one;
    a bare `make VAR=value` names none)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    named = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return [n for n in named if not fnmatch.filter(targets, n)]


def missing_scripts(command: str, root: Path) -> list[str]:
    """Script paths (`dir/x.py`, `dir/x.sh`) and project modules (`python -m pkg.mod`) named in
    `command` that are not in `root`."""
    missing = [
        word
        for word in command.split()
        if SCRIPT.match(word.strip("(),;:'\"")) and not (root / word.strip("(),;:'\"")).is_file()
    ]
    for module in MODULE.findall(command):
        if module.split(".")[0] not in {p.name for p in root.iterdir() if p.is_dir()}:
            continue  # a library's module (pip, pytest): not ours to check
        base = root / module.replace(".", "/")
        if not (base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()):
            missing.append(f"python -m {module}")
    return missing


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
    assert not missing_scripts(command, ROOT), command
    if words[:1] == ["make"]:
        missing = unknown_make_targets(shlex.join(words), _make_targets())
        assert not missing, f"unknown make target(s) {missing} in: {command}"
    elif words[:3] == ["python", "-m", "train_job"]:
        from train_job.config import resolve_config

        argv = [w for w in words[3:] if w != "--help"]
        resolve_config(argv, env={})  # raises SystemExit on an unknown flag
    elif words[:3] in (["python", "-m", "score_job"], ["python", "-m", "score_job.local"]):
        from score_job.config import build_parser

        argv = words[3:]
        if words[2] == "score_job.local":  # the launcher's own flags, then -- and the job's
            argv = argv[argv.index("--") + 1 :] if "--" in argv else []
        build_parser().parse_args([w for w in argv if w != "--help"])  # SystemExit if unknown
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


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path: Path) -> None:
    assert not broken_links(path), f"broken links in {path.relative_to(ROOT)}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_inline_commands_and_scripts_are_real(path: Path) -> None:
    targets = _make_targets()
    for code in _inline_commands(path):
        if code.startswith("make "):
            missing = unknown_make_targets(code, targets)
            assert not missing, f"unknown make target(s) {missing} in `{code}` ({path.name})"
        assert not missing_scripts(code, ROOT), f"no such script in `{code}` ({path.name})"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in LINK.findall((ROOT / "README.md").read_text())
    }
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_the_checks_catch_a_broken_link_target_and_script(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "real.py").write_text("")
    (tmp_path / "other.md").write_text("# Other page\n\n## A section, with punctuation!\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok anchor](other.md#a-section-with-punctuation) [dir](scripts/)\n"
        "[web](https://example.com/x) [self](#title)\n"
        "[gone](missing.md) [bad anchor](other.md#no-such-heading) [gone dir](nope/)\n"
        "`[in code](not-checked.md)`\n\n"
        "```bash\n[in a block](not-checked-either.md)\n```\n\n# Title\n"
    )
    assert broken_links(page) == ["missing.md", "other.md#no-such-heading", "nope/"]
    assert unknown_make_targets("make run bench-*", {"run", "bench-train"}) == []
    assert unknown_make_targets("make run nope X=1", {"run"}) == ["nope"]
    assert missing_scripts("python scripts/real.py && bash scripts/gone.sh", tmp_path) == [
        "scripts/gone.sh"
    ]
    assert missing_scripts("python -m scripts.real; python -m scripts.gone", tmp_path) == [
        "python -m scripts.gone"
    ]
    assert missing_scripts("python -m pip install x", tmp_path) == []


RUNNABLE = [
    pytest.param(block, id=f"{path.relative_to(ROOT)}#{i}")
    for path in DOCS
    if path.exists()
    for i, (marker, block) in enumerate(_blocks(path))
    if marker == "run"
]


@pytest.mark.parametrize("block", RUNNABLE)
def test_runnable_snippet_exits_0(block: str, tmp_path: Path) -> None:
    env = {**os.environ, "FND_STORE": str(tmp_path / "store")}
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
