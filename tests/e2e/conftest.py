from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import ServerProcess


@pytest.fixture(scope="module")
def monolith(backend_name: str) -> Iterator[ServerProcess]:
    """``aiplatform serve`` with every engine in-process."""
    server = ServerProcess([], {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": backend_name})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pod(backend_name: str) -> Iterator[ServerProcess]:
    """``aiplatform serve --engines embeddings``: the embeddings engine as its own service."""
    server = ServerProcess(
        ["--engines", "embeddings"], {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": backend_name}
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(pod: ServerProcess) -> Iterator[ServerProcess]:
    """The same server with embeddings forwarded to ``pod``."""
    server = ServerProcess([], {"AIPLATFORM_ENGINES__EMBEDDINGS__URL": pod.url})
    server.start()
    yield server
    server.stop()
