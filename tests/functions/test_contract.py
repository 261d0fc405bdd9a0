"""Contract test: schemathesis generates requests from functions/predict/openapi.yaml and checks
the served function's answers (status codes, content types, response schemas, 5xx) against it.

One test function per operation: schemathesis gives the items of one parametrized function the
same pytest node id, and a test runner that schedules by node id (pytest-xdist) would run one of
them only."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from testing.paths import FUNCTION_DIR

schema = schemathesis.openapi.from_path(FUNCTION_DIR / "openapi.yaml")

pytestmark = pytest.mark.slow

bounded = settings(
    max_examples=40,  # bounded: enough to cover each shape, few enough for a fast suite
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
TESTED_OPERATIONS = ["GET /", "POST /"]


def test_every_operation_of_the_description_has_its_test() -> None:
    labels = sorted(result.ok().label for result in schema.get_all_operations())
    assert labels == TESTED_OPERATIONS


@schema.include(method="POST", path="/").parametrize()
@bounded
def test_predict_honours_its_openapi_description(case, served_tiny) -> None:
    case.call_and_validate(base_url=served_tiny.url.rstrip("/"), timeout=30)


@schema.include(method="GET", path="/").parametrize()
@bounded
def test_readiness_honours_its_openapi_description(case, served_tiny) -> None:
    case.call_and_validate(base_url=served_tiny.url.rstrip("/"), timeout=30)
