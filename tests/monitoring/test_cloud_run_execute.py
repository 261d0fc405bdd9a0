"""RETRAIN_COMMAND of the monitor job: start the train job through the Cloud Run Admin API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from monitoring.cloud_run_execute import execute_job

JOB = "projects/p/locations/europe-west1/jobs/fakenews-train"


@dataclass
class FakeResponse:
    status_code: int
    body: dict[str, Any]
    text: str = ""

    def json(self) -> dict[str, Any]:
        return self.body


@dataclass
class FakeSession:
    response: FakeResponse
    calls: list[str] = field(default_factory=list)

    def post(self, url: str, json: Any, timeout: float) -> FakeResponse:
        self.calls.append(url)
        return self.response


def test_posts_run_to_the_job_and_returns_the_execution() -> None:
    execution = f"{JOB}/executions/fakenews-train-abc12"
    session = FakeSession(FakeResponse(200, {"metadata": {"name": execution}}))
    assert execute_job(JOB, session) == execution
    assert session.calls == [f"https://run.googleapis.com/v2/{JOB}:run"]


def test_a_refused_call_is_an_error_with_the_status() -> None:
    session = FakeSession(FakeResponse(403, {}, text="PERMISSION_DENIED run.jobs.run"))
    with pytest.raises(RuntimeError, match="403: PERMISSION_DENIED"):
        execute_job(JOB, session)


def test_a_malformed_job_name_is_rejected_before_any_call() -> None:
    session = FakeSession(FakeResponse(200, {}))
    with pytest.raises(ValueError, match="projects/<p>/locations/<r>/jobs/<name>"):
        execute_job("fakenews-train", session)
    assert session.calls == []
