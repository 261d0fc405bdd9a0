"""Dollars per million predictions in the serving comparison: the arithmetic, on a made-up run."""

from __future__ import annotations

import pytest

from benchmarks.bench_serve_compare import (
    FLOOR,
    PRICE_GIB_SECOND,
    PRICE_MILLION_REQUESTS,
    PRICE_VCPU_SECOND,
    cost_per_million,
    memory_setting_gib,
)


def test_memory_setting_is_the_least_that_holds_the_server_with_headroom() -> None:
    assert memory_setting_gib(140) == 0.5
    assert memory_setting_gib(400) == 1.0  # 600 MiB needed
    assert memory_setting_gib(800) == 2.0
    assert memory_setting_gib(100_000) == 8.0


def test_cost_is_busy_instance_time_plus_the_request_fee() -> None:
    report = {
        "machine": {"cpus": 2},
        "servers": {
            "small": {"pss_mib": 140, "c16": {"throughput_rps": 250.0}},
            "large": {"pss_mib": 800, "c16": {"throughput_rps": 25.0}},
            FLOOR: {"pss_mib": 60, "c16": {"throughput_rps": 2000.0}},
        },
    }
    costs = cost_per_million(report)
    assert set(costs) == {"small", "large"}
    busy_small = 1e6 / 250
    expected = (
        busy_small * (2 * PRICE_VCPU_SECOND + 0.5 * PRICE_GIB_SECOND) + PRICE_MILLION_REQUESTS
    )
    assert costs["small"]["dollars"] == pytest.approx(expected, abs=0.01)
    assert costs["small"]["instance_hours"] == pytest.approx(busy_small / 3600, abs=0.01)
    # Ten times slower and a larger memory setting: more than ten times the compute.
    compute = {name: c["dollars"] - PRICE_MILLION_REQUESTS for name, c in costs.items()}
    assert compute["large"] > 10 * compute["small"]
