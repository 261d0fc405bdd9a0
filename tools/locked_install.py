"""Install a hash lock as the platform does, from a wheelhouse holding exactly the files the lock
names plus a stand-in for the next release of every package in it.

Cloud Functions' build runs `pip install -r requirements.txt` against the package index with the
runtime's pip, so a lock is sound only if that resolves to the lock's pins whatever upstream
publishes next. An install from this wheelhouse with `--no-index` checks exactly that, offline
and repeatably: a requirement that pip resolves past the lock's pins takes the stand-in (a post
release of the pinned version, newer than the pin and inside any range that admits it, and not
among the lock's hashes) and hash checking refuses it, as it refused google-auth 2.63.1 when it
was published. Nothing from the index or this machine's pip configuration enters the install.
"""

from __future__ import annotations

import os
import re
import subprocess
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from tools.pin_extra_bases import ENTRY

TIMEOUT_S = 600  # pip mostly hits its cache; a cold cache downloads ~100 MB of wheels


def lock_pins(lock: Path) -> dict[str, str]:
    """Canonical name -> pinned version of every entry of a lock."""
    pins = {}
    for line in lock.read_text().splitlines():
        if entry := ENTRY.match(line):
            pins[canonicalize_name(entry["name"])] = entry["rest"].split()[0]
    return pins


def next_release(version: str) -> str:
    """The smallest kind of release that follows a pin: a post release of it (2.63.0 ->
    2.63.0.post1), which `==2.63.0` refuses and `<3` or `>=2.14` accept."""
    parsed = Version(version)
    return ".".join(map(str, parsed.release)) + f".post{(parsed.post or 0) + 1}"


def stand_in_wheel(name: str, version: str, folder: Path) -> Path:
    """A metadata-only wheel of `name` at `version` that installs nothing."""
    project = re.sub(r"[-_.]+", "_", name)
    info = f"{project}-{version}.dist-info"
    path = folder / f"{project}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: tools.locked_install\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


# What the platform's builder does not have: this machine's pip settings (its index, find-links
# folders and constraints) and a Python path into this repository, whose egg-info `pip check`
# would read as an installed distribution.
_NOT_ON_THE_BUILDER = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


def builder_env() -> dict[str, str]:
    """This process's environment as the platform's builder has it: no Python path or active
    venv from here, no pip setting of this machine."""
    return {k: v for k, v in os.environ.items() if k not in _NOT_ON_THE_BUILDER and k[:4] != "PIP_"}


def offline_pip_env() -> dict[str, str]:
    """builder_env(), with pip's configuration files left out too, for installs that must see the
    wheelhouse alone."""
    return {**builder_env(), "PIP_CONFIG_FILE": os.devnull}


def locked_wheelhouse(lock: Path, folder: Path, python: Path) -> Path:
    """folder, holding the files the lock names (downloaded by `python`'s pip, hashes checked,
    nothing resolved) and a stand-in next release of every locked package."""
    folder.mkdir(parents=True, exist_ok=True)
    options = ["--no-input", "--no-deps", "--require-hashes", "-r", str(lock), "-d", str(folder)]
    done = subprocess.run(
        [str(python), "-m", "pip", "download", "-q", *options],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip download of {lock}:\n{done.stderr}")
    for name, version in lock_pins(lock).items():
        stand_in_wheel(name, next_release(version), folder)
    return folder


def pip_install(
    python: Path, lock: Path, wheelhouse: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """`python -m pip install -r lock` as the platform runs it, from the wheelhouse alone."""
    pip = [str(python), "-m", "pip", "install", "-q", "--no-input", "--no-index"]
    return subprocess.run(
        [*pip, "--find-links", str(wheelhouse), *options, "-r", str(lock)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=offline_pip_env(),
    )
