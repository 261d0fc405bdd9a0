"""--precision: bf16 autocast only where the device computes bf16 natively, fp32 on request, and
the run records which one it got."""

from __future__ import annotations

import pytest
import torch

from train_job import device
from train_job.config import resolve_config

CPU = torch.device("cpu")


def _product_dtype(precision: str) -> torch.dtype:
    layer = torch.nn.Linear(4, 4)
    with device.autocast_for(CPU, precision):
        return layer(torch.ones(2, 4)).dtype


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpus_own_bf16_support(native: bool, monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    assert _product_dtype("auto") == (torch.bfloat16 if native else torch.float32)
    assert device.uses_bf16(CPU, "auto") is native


def test_fp32_never_autocasts(monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert _product_dtype("fp32") == torch.float32
    assert not device.uses_bf16(CPU, "fp32")


def test_a_torch_without_the_probe_counts_as_no_bf16(monkeypatch) -> None:
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert not device.native_bf16(CPU)


def test_a_gpu_always_has_bf16() -> None:
    assert device.native_bf16(torch.device("cuda"))


def test_the_quick_profile_autocasts_and_the_full_one_stays_as_measured() -> None:
    assert resolve_config(["--profile", "quick"], env={}).precision == "auto"
    assert resolve_config(["--profile", "full"], env={}).precision == "fp32"
    assert resolve_config(["--precision", "fp32"], env={}).precision == "fp32"
    assert resolve_config(["--profile", "full", "--precision", "auto"], env={}).precision == "auto"
