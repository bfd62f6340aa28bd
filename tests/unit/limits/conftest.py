from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.unit.limits.redis_server import RedisServer, redis_server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """Keys of the test's own in the module's Redis."""
    return f"test:{uuid.uuid4().hex}:"
