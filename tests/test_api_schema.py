"""Property-based API testing: schemathesis generates requests from our OpenAPI schema.

Every response must be a non-5xx with the documented status code, content type and body
schema. Jobs are not run here (MUSICREC_RUN_JOBS=false): /fit only queues them.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from musicrec.api.app import create_app
from tests.api_helpers import api_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MIN_REQUESTS = 500


@pytest.fixture(scope="module")
def api_app(tmp_path_factory):
    app = create_app(
        api_settings(
            tmp_path_factory.mktemp("schema"),
            run_jobs=False,
            max_upload_bytes=50_000,
            log_level="WARNING",
        )
    )
    with TestClient(app):  # runs the lifespan: store, bootstrap model
        yield app


@pytest.fixture(scope="module")
def api_schema(api_app):
    return schemathesis.openapi.from_asgi("/openapi.json", api_app)


def test_no_server_errors_and_responses_match_schema(api_schema):
    """Every operation, up to 45 generated cases each (schemathesis's pytest plugin does
    not run under pytest 9, so Hypothesis drives each operation's strategy directly)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    count = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=45,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case):
            nonlocal count
            count += 1
            case.call_and_validate(checks=CHECKS)

        check()
    print(f"schemathesis: {count} generated requests over {len(operations)} operations")
    assert count >= MIN_REQUESTS, count
