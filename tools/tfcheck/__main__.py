"""Command line: python -m tools.tfcheck [--dir terraform] [--checks ...]. Exit 1 on any finding."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from tools.tfcheck.checkov_check import run_checkov
from tools.tfcheck.findings import Finding
from tools.tfcheck.fmt_check import check_format
from tools.tfcheck.least_privilege import check_least_privilege
from tools.tfcheck.provider_schema import load_provider_schema
from tools.tfcheck.public_access import check_public_access
from tools.tfcheck.references import check_references
from tools.tfcheck.schema_check import check_schema
from tools.tfcheck.terraform_files import TerraformFile, load_module

CHECKS = ("fmt", "references", "schema", "public-access", "least-privilege", "checkov")
REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.tfcheck", description=__doc__)
    parser.add_argument(
        "--dir", type=Path, default=REPO_ROOT / "terraform", help="module directory"
    )
    parser.add_argument(
        "--checks",
        default=",".join(CHECKS),
        help=f"comma-separated subset of {','.join(CHECKS)} (default: all)",
    )
    args = parser.parse_args(argv)
    selected = [name.strip() for name in args.checks.split(",") if name.strip()]
    if unknown := sorted(set(selected) - set(CHECKS)):
        parser.error(f"unknown checks: {', '.join(unknown)}")
    if not args.dir.is_dir():
        parser.error(f"not a directory: {args.dir}")

    files, findings = load_module(args.dir)
    parsed: dict[str, Callable[[list[TerraformFile]], list[Finding]]] = {
        "references": check_references,
        "schema": lambda tf_files: check_schema(tf_files, load_provider_schema()),
        "public-access": check_public_access,
        "least-privilege": check_least_privilege,
    }
    for name in selected:
        if name == "fmt":
            results = check_format(args.dir)
        elif name == "checkov":
            summary, results = run_checkov(args.dir)
            print(
                f"checkov: {summary.passed} passed, {summary.failed} failed, "
                f"{summary.skipped} skipped"
            )
            for skip in summary.skips:
                print(f"  skipped {skip}")
        else:
            results = parsed[name](files)
        print(f"{name}: {'ok' if not results else f'{len(results)} finding(s)'}")
        findings += results
    for finding in findings:
        print(finding, file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
