"""Build the Cloud Function source zip: functions/predict/, the packages it imports, the log schema.

The function's own packages (packages/artifact_store/, packages/job_config/,
packages/prediction_log/, packages/production_pointer/, packages/serving_core/: shared with
monitoring and the batch jobs by declared dependency) are vendored at the zip's root, which is on
the function's import path, so the deployed folder needs nothing from the repository.
`make function-zip` and the zip test both call this, so what is tested is what Terraform uploads.
The zip is reproducible (sorted entries, fixed timestamps and permissions): the same sources give
the same bytes, so Terraform's content hash (sources/predict-<md5>.zip) only changes, and the
function only redeploys, when the code does.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTION_DIR = REPO_ROOT / "functions" / "predict"
# Import packages the function depends on (pyproject's own dependencies, installed by `make venv`).
VENDORED_PACKAGES = (
    REPO_ROOT / "packages" / "artifact_store" / "artifact_store",
    REPO_ROOT / "packages" / "job_config" / "job_config",
    REPO_ROOT / "packages" / "prediction_log" / "prediction_log",
    REPO_ROOT / "packages" / "production_pointer" / "production_pointer",
    REPO_ROOT / "packages" / "serving_core" / "serving_core",
)
EXCLUDED_PARTS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# The lock's input: the platform installs requirements.txt (the lock) only.
EXCLUDED_NAMES = frozenset({"requirements.in"})
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def _tree(folder: Path, prefix: str = "") -> dict[str, Path]:
    """Archive name -> file for a folder's source files (no caches or bytecode)."""
    return {
        prefix + path.relative_to(folder).as_posix(): path
        for path in folder.rglob("*")
        if path.is_file()
        and not EXCLUDED_PARTS.intersection(path.relative_to(folder).parts)
        and not path.name.endswith(EXCLUDED_SUFFIXES)
        and path.name not in EXCLUDED_NAMES
    }


def function_files(source: Path = FUNCTION_DIR) -> dict[str, Path]:
    """Archive name -> file, for everything the function needs and nothing else."""
    files = _tree(source)
    for package in VENDORED_PACKAGES:
        files.update(_tree(package, prefix=f"{package.name}/"))
    if "main.py" not in files or "requirements.txt" not in files:
        raise FileNotFoundError(f"{source} needs main.py and requirements.txt to deploy")
    return files


def build_zip(out: Path, source: Path = FUNCTION_DIR) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(function_files(source).items()):
            entry = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, path.read_bytes())
    partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "function.zip")
    parser.add_argument("--source", type=Path, default=FUNCTION_DIR)
    args = parser.parse_args(argv)
    out = build_zip(args.out, args.source)
    names = sorted(function_files(args.source))
    print(f"{out}: {len(names)} files, {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
