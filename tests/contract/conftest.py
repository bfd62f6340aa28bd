"""Engines in every mode: in-process, remote through ASGITransport, remote over a real socket.

Each contract test takes ``engine`` (the engine under test, one per mode) and ``reference`` (the
in-process engine on the same model) and asserts the two give the same answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import httpx
import msgspec
import pytest

from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings.backend import EmbeddingBackend
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine, make_backend
from aiplatform.remote.client import RemoteEngine
from aiplatform.server.app import create_app
from aiplatform.settings import EmbeddingsSettings, EngineSettings, Settings
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


@asynccontextmanager
async def in_mode(
    mode: str, local: Engine, settings: EngineSettings, pod: Callable[[], ServerProcess]
) -> AsyncIterator[Engine]:
    """``local`` itself, or a remote adapter reaching the same engine through a pod."""
    kind = local.kind
    if mode == "remote-socket":
        async with RemoteEngine(kind, msgspec.structs.replace(settings, url=pod().url)) as remote:
            yield remote
        return
    async with local:
        if mode == "local":
            yield local
            return
        pod_app = create_app(Settings(), engines={kind.name: local})
        remote = RemoteEngine(
            kind,
            msgspec.structs.replace(settings, url=f"http://{kind.name}-pod"),
            transport=httpx.ASGITransport(app=pod_app),
        )
        async with remote:
            yield remote


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
