"""Engines in every mode (:mod:`aiplatform.testing`): in-process, remote through ASGI, remote
over a real socket.

Each contract test takes ``engine`` (the engine under test, one per mode) and ``reference`` (the
in-process engine on the same model) and asserts the two give the same answers. Every pod
requires the kit's credentials (:data:`aiplatform.testing.POD_AUTH`), which the remote engines
present as a gateway does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings.backend import EmbeddingBackend
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine, make_backend
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.testing import MODES, POD_AUTH, in_mode
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
def pod_auth_env(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], dict[str, str]]:
    """The environment that has a pod require the kit's credentials, keeping its identities in
    a folder of its own."""
    return lambda: POD_AUTH.env(tmp_path_factory.mktemp("pod-auth"))


@pytest.fixture(scope="session")
def embeddings_pod(
    backend_name: str, pod_auth_env: Callable[[], dict[str, str]]
) -> Iterator[ServerProcess]:
    """A second ``aiplatform serve --engines embeddings`` process on a loopback port."""
    env = {
        **pod_auth_env(),
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
