"""Every benchmark report names the CPU and the vector extensions that decide its speeds, read
from /proc/cpuinfo, so numbers from a bf16 machine and an AVX2-only one are not mixed up."""

from __future__ import annotations

import platform
from pathlib import Path

from benchmarks.report import processor

AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx fma avx2 bmi2
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480C
flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile
"""


def _cpuinfo(tmp_path: Path, text: str) -> Path:
    (tmp_path / "cpuinfo").write_text(text)
    return tmp_path / "cpuinfo"


def test_the_model_name_and_the_extensions_it_has(tmp_path: Path) -> None:
    assert processor(_cpuinfo(tmp_path, AVX2_ONLY)) == "AMD EPYC (avx2)"
    described = processor(_cpuinfo(tmp_path, SAPPHIRE_RAPIDS))
    assert described == (
        "Intel(R) Xeon(R) Platinum 8480C (avx2, avx512f, avx512_vnni, avx512_bf16, amx_tile)"
    )


def test_a_cpu_without_any_of_them_says_so(tmp_path: Path) -> None:
    text = "model name\t: Old CPU\nflags\t\t: fpu sse sse2\n"
    assert processor(_cpuinfo(tmp_path, text)).startswith("Old CPU (none of avx2/")


def test_no_cpuinfo_falls_back_to_the_platform(tmp_path: Path) -> None:
    assert processor(tmp_path / "missing") == (platform.processor() or platform.machine())
