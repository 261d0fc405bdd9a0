"""Where the job computes: the device, bf16 autocast where it pays, and the seeds.

Matrices run in bf16 autocast where the device computes bf16 natively (a GPU, or a CPU with
AVX512-BF16 or AMX: 1.4-1.5x the fp32 step on 2 such cores), unless `precision` is fp32.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 matrices in hardware, where autocast to bf16 pays."""
    if device.type == "cuda":
        return True
    # torch has no public query for this; its private one is what oneDNN itself checks. Without
    # AVX512-BF16, bf16 on a CPU is emulated and slower than fp32.
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe is not None and probe())


def uses_bf16(device: torch.device, precision: str) -> bool:
    return precision == "auto" and native_bf16(device)


def autocast_for(device: torch.device, precision: str = "auto"):
    enabled = uses_bf16(device, precision)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but no CUDA device is visible")
    return torch.device(spec)
