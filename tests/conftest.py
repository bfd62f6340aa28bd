from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

#: Every engine test runs on the fake backend; the real model runs too, marked slow.
EMBEDDING_BACKENDS = ["fake", pytest.param("sentence_transformers", marks=pytest.mark.slow)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=EMBEDDING_BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose server accepts connections (the kernel does) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]
