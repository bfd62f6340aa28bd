"""Every operation of the OpenAPI description, driven by schemathesis against a served app.

Requests generated from ``docs/openapi.json`` (bodies, query strings, multipart uploads and
path ids) go to ``aiplatform serve`` with every kind on its fake backend. No answer may be a
server error, and every answer must be one the description declares: its status, its content
type and, for JSON, its schema. The run is bounded (a few examples per operation) and
derandomized, so it is the same run on every machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aiplatform.engines.registry import ENGINE_KINDS
from aiplatform.testing import ServerProcess, fake_settings

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
#: Examples per operation: enough to reach each field's bounds, types and absences once.
MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = fake_settings(tmp_path_factory.mktemp("schemathesis"))
    with ServerProcess.serving(settings, ENGINE_KINDS) as server:
        yield server


#: The committed description: the test also holds it to what is served. The routes of logins,
#: keys and the admin API exist only with authentication on, which would put every other route
#: behind a bearer token; tests/unit/test_auth.py and tests/e2e/test_auth_server.py cover them.
schema = schemathesis.openapi.from_path(DOCUMENT).exclude(tag=["auth", "admin"])


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_described(served: ServerProcess, case: Any) -> None:
    case.call_and_validate(base_url=served.url, checks=CHECKS, timeout=30)
