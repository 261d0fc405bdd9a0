"""How many CPUs this process may use, for sizing onnxruntime's threads."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may use: its affinity (taskset, cpusets), capped by a cgroup v2 CPU
    quota (containers, Cloud Run's vCPU limit), rounded up, at least 1. os.cpu_count() counts
    the host's CPUs, which a 1-vCPU instance may see many of."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus
