from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.nemo_models import NemoModels

#: Every engine test runs on the fake backend; the real model runs too, marked slow.
EMBEDDING_BACKENDS = ["fake", pytest.param("sentence_transformers", marks=pytest.mark.slow)]


@pytest.fixture(scope="session", autouse=True)
def _data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Engines that store data (speakers, RAG) keep it in the session's own folder, never in
    the user's ``~/.local/share``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
        yield


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


@pytest.fixture(scope="session")
def nemo_models(tmp_path_factory: pytest.TempPathFactory) -> NemoModels:
    """The small NeMo checkpoints of :mod:`tests.nemo_models`, trained once per session (about
    a minute on two cores)."""
    from tests.nemo_models import build_all

    return build_all(tmp_path_factory.mktemp("nemo-models"))
