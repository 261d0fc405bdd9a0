"""checkov on the module: zero failed checks, every skip with its reason.

checkov lives in its own virtual environment (its pins conflict with the project's), so it runs as
a program: $CHECKOV, else `checkov` on PATH, else <repo>/.venv-checkov/bin/checkov.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.tfcheck.findings import Finding

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CheckovSummary:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    skips: list[str] = field(default_factory=list)  # "CKV_x resource: reason"


def checkov_binary() -> str:
    if configured := os.environ.get("CHECKOV"):
        return configured
    if found := shutil.which("checkov"):
        return found
    fallback = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
    if fallback.is_file():
        return str(fallback)
    raise FileNotFoundError("no checkov: set CHECKOV or create .venv-checkov (see README)")


def run_checkov(directory: Path) -> tuple[CheckovSummary, list[Finding]]:
    # --skip-download: no calls to the Prisma Cloud API (offline); compact JSON on stdout.
    command = [
        checkov_binary(),
        "--directory",
        str(directory),
        "--framework",
        "terraform",
        "--skip-download",
        "--output",
        "json",
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env=env
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        message = f"checkov produced no report (exit {result.returncode}): {result.stderr[-2000:]}"
        return CheckovSummary(), [Finding("checkov", directory, message)]
    return _summarise(report, directory)


def _summarise(report: Any, directory: Path) -> tuple[CheckovSummary, list[Finding]]:
    reports = report if isinstance(report, list) else [report]
    summary = CheckovSummary()
    findings: list[Finding] = []
    for part in reports:
        if "results" not in part:  # {"passed": 0, "failed": 0, ...} when nothing was scanned
            continue
        results = part["results"]
        summary.passed += len(results.get("passed_checks", []))
        for failed in results.get("failed_checks", []):
            summary.failed += 1
            message = f"{failed['check_id']} {failed['resource']}: {failed['check_name']}"
            where = directory / failed["file_path"].lstrip("/")
            findings.append(Finding("checkov", where, message))
        for skipped in results.get("skipped_checks", []):
            summary.skipped += 1
            reason = (skipped.get("check_result") or {}).get("suppress_comment", "").strip()
            summary.skips.append(f"{skipped['check_id']} {skipped['resource']}: {reason}")
            if not reason or reason == "No comment provided":
                message = f"{skipped['check_id']} {skipped['resource']}: skipped without a reason"
                findings.append(Finding("checkov", directory, message))
    if summary.passed + summary.failed + summary.skipped == 0:
        findings.append(Finding("checkov", directory, "checkov scanned no resources"))
    return summary, findings
