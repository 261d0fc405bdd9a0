"""Contract test: schemathesis generates requests from functions/predict/openapi.yaml and checks
the served function's answers (status codes, content types, response schemas, 5xx) against it."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from testing.paths import FUNCTION_DIR

schema = schemathesis.openapi.from_path(FUNCTION_DIR / "openapi.yaml")

pytestmark = pytest.mark.slow


@schema.parametrize()
@settings(
    max_examples=40,  # bounded: enough to cover each shape, few enough for a fast suite
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_function_honours_its_openapi_description(case, served_tiny) -> None:
    case.call_and_validate(base_url=served_tiny.url.rstrip("/"), timeout=30)
