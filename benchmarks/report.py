"""A benchmark's report: the numbers as JSON and the Markdown made from them."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The vector extensions that decide this project's speeds on a CPU: the train job autocasts to
# bf16 only with AVX512-BF16 or AMX (docs/training.md has what that gains), and onnxruntime's
# int8 kernels take their VNNI path where the CPU has it.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def write_report(
    report: dict[str, Any], out: Path, write_markdown: Callable[[dict[str, Any], Path], None]
) -> None:
    """out.json (the numbers) and out.md (the report made from them); prints the report."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, out.with_suffix(".md"))
    print(out.with_suffix(".md").read_text())


def processor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name and which of SPEED_FLAGS it has, e.g. "AMD EPYC (avx2)": two
    machines with the same core count can differ twofold here, so every report names it."""
    try:
        info = cpuinfo.read_text()
    except OSError:  # not Linux: the platform's own word
        return platform.processor() or platform.machine()
    name = re.search(r"^model name\s*:\s*(.+?)\s*$", info, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.*)$", info, re.MULTILINE)
    have = set(flags.group(1).split()) if flags else set()
    extensions = ", ".join(f for f in SPEED_FLAGS if f in have) or "none of " + "/".join(
        SPEED_FLAGS
    )
    return f"{name.group(1) if name else platform.machine()} ({extensions})"
