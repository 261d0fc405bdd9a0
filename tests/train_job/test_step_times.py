"""The job logs and records how long each step took: most of a run is not training, and
whoever waits on one should see where its minutes go."""

from __future__ import annotations

import logging

import pytest

from train_job.config import TrainConfig
from train_job.run_record import StepTimes, results_record, run_summary

STEPS = [
    "data",
    "base model",
    "train",
    "export",
    "score splits",
    "metrics and gate",
    "ood fit",
    "bundle",
    "trust report",
    "publish",
    "promote",
]


def test_a_run_records_every_step_in_order(tiny_run: dict) -> None:
    steps = tiny_run["seconds_by_step"]
    assert list(steps) == STEPS
    assert all(seconds >= 0 for seconds in steps.values())
    # Each step is rounded to 0.1 s; what lies between steps is bookkeeping.
    assert sum(steps.values()) <= tiny_run["seconds"] + 0.05 * len(steps)
    lines = [line for line in run_summary(tiny_run).splitlines() if line.startswith("minutes:")]
    assert len(lines) == 1 and "in all: data" in lines[0] and "promote" in lines[0]


def test_the_results_file_keeps_the_step_times(tiny_run: dict) -> None:
    record = results_record(TrainConfig(), tiny_run)
    assert record["seconds_by_step"] == tiny_run["seconds_by_step"]


def test_each_step_is_logged_as_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    step = StepTimes()
    with caplog.at_level(logging.INFO, logger="train_job"):
        with step("first"):
            pass
        with step("second"):
            pass
    assert list(step.seconds) == ["first", "second"]
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["step first", "step second"]


def test_a_failing_step_is_logged_and_not_recorded_as_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    step = StepTimes()
    with (
        caplog.at_level(logging.INFO, logger="train_job"),
        pytest.raises(ValueError),
        step("export"),
    ):
        raise ValueError("no graph")
    assert step.seconds == {}
    assert caplog.records[-1].levelno == logging.ERROR
    assert caplog.records[-1].getMessage().startswith("step export failed after")
