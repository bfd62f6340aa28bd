"""Engines in every mode (:mod:`aiplatform.testing`): in-process, remote through ASGI, remote
over a real socket.

Each contract test takes ``engine`` (the engine under test, one per mode) and ``reference`` (the
in-process engine on the same model) and asserts the two give the same answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings.backend import EmbeddingBackend
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine, make_backend
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.testing import MODES, in_mode
from tests.support import ServerProcess


@pytest.fixture(scope="session")
def embeddings_settings(backend_name: str) -> EmbeddingsSettings:
    return EmbeddingsSettings(backend=backend_name, max_inputs=64)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def loaded_backend(embeddings_settings: EmbeddingsSettings) -> EmbeddingBackend:
    backend = make_backend(embeddings_settings)
    backend.load()
    return backend


@pytest.fixture(scope="session")
def embeddings_pod(backend_name: str) -> Iterator[ServerProcess]:
    """A second ``aiplatform serve --engines embeddings`` process on a loopback port."""
    env = {
        "AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": backend_name,
        "AIPLATFORM_ENGINES__EMBEDDINGS__MAX_INPUTS": "64",
    }
    server = ServerProcess(["--engines", "embeddings"], env)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def reference(
    embeddings_settings: EmbeddingsSettings, loaded_backend: EmbeddingBackend
) -> AsyncIterator[Engine]:
    async with LocalEmbeddingsEngine(embeddings_settings, backend=loaded_backend) as engine:
        yield engine


@pytest.fixture(params=MODES)
async def engine(
    request: pytest.FixtureRequest,
    embeddings_settings: EmbeddingsSettings,
    loaded_backend: EmbeddingBackend,
) -> AsyncIterator[Engine]:
    local = LocalEmbeddingsEngine(embeddings_settings, backend=loaded_backend)
    pod = lambda: request.getfixturevalue("embeddings_pod")  # noqa: E731 (started on demand)
    async with in_mode(request.param, local, embeddings_settings, pod) as engine:
        yield engine
