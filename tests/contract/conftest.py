"""Engines in every mode: in-process, remote through ASGITransport, remote over a real socket.

Each contract test takes ``engine`` (the engine under test, one per mode) and ``reference`` (the
in-process engine on the same model) and asserts the two give the same answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import msgspec
import pytest

from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings import EMBEDDINGS
from aiplatform.engines.embeddings.backend import EmbeddingBackend
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine, make_backend
from aiplatform.remote.client import RemoteEngine
from aiplatform.server.app import create_app
from aiplatform.settings import EmbeddingsSettings, Settings
from tests.support import ServerProcess

MODES = ["local", "remote-asgi", "remote-socket"]


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
    mode = request.param
    if mode == "remote-socket":
        pod: ServerProcess = request.getfixturevalue("embeddings_pod")
        remote = RemoteEngine(EMBEDDINGS, msgspec.structs.replace(embeddings_settings, url=pod.url))
        async with remote:
            yield remote
        return
    async with LocalEmbeddingsEngine(embeddings_settings, backend=loaded_backend) as local:
        if mode == "local":
            yield local
            return
        pod_app = create_app(Settings(), engines={"embeddings": local})
        remote = RemoteEngine(
            EMBEDDINGS,
            msgspec.structs.replace(embeddings_settings, url="http://embeddings-pod"),
            transport=httpx.ASGITransport(app=pod_app),
        )
        async with remote:
            yield remote
