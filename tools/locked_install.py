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


def offline_pip_env() -> dict[str, str]:
    """This process's environment with every pip setting of this machine left out (its index,
    find-links folders and constraints), as on the platform's builder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


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
