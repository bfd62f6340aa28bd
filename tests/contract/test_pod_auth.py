"""The kit's pods really require the service credential, as a gateway's pods do: through the ASGI
pod and through a real ``aiplatform serve`` process, a remote engine presenting the kit's
service token is served, while one presenting none or the wrong one is refused, and so is a
caller naming a tenant without it. (That a call made as one tenant reaches the pod as that
tenant is ``test_owners_never_see_each_other`` in test_rag.py, in every mode.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import msgspec
import pytest

from aiplatform.api.openai import EmbeddingRequest
from aiplatform.engines.embeddings import EMBED
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.registry import ENGINE_KINDS
from aiplatform.errors import AIPlatformError, AuthenticationError, PermissionDeniedError
from aiplatform.remote.client import RemoteEngine
from aiplatform.tenant import SERVICE_TOKEN_HEADER, TENANT_HEADER
from aiplatform.testing import (
    POD_AUTH,
    ServerProcess,
    asgi_client,
    asgi_pod,
    fake_settings,
)

pytestmark = pytest.mark.anyio

KIND = ENGINE_KINDS["embeddings"]
SETTINGS = EmbeddingsSettings(backend="fake")
WRONG_TOKEN = "not-the-service-token-" + "x" * 30
EMBED_BODY = {"input": "hello"}


@dataclass(frozen=True, slots=True)
class Pod:
    """One pod serving embeddings, reached with whatever credentials a test presents."""

    #: A remote engine presenting ``service_token`` (None: none).
    remote: Callable[[str | None], RemoteEngine]
    #: A bare HTTP client, sending only the headers a test gives it.
    client: Callable[[], httpx.AsyncClient]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = fake_settings(tmp_path_factory.mktemp("auth-pod"))
    with ServerProcess.serving(settings, ["embeddings"], auth=POD_AUTH) as server:
        yield server


@pytest.fixture(params=["remote-asgi", "remote-socket"])
async def pod(request: pytest.FixtureRequest) -> AsyncIterator[Pod]:
    if request.param == "remote-socket":
        server: ServerProcess = request.getfixturevalue("served")
        at_url = msgspec.structs.replace(SETTINGS, url=server.url)
        yield Pod(
            remote=lambda token: RemoteEngine(KIND, at_url, service_token=token),
            client=lambda: httpx.AsyncClient(base_url=server.url),
        )
        return
    local = LocalEmbeddingsEngine(SETTINGS)
    app = asgi_pod(local)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # litestar's scopes
    async with local:
        yield Pod(
            remote=lambda token: asgi_client(app, KIND, SETTINGS, service_token=token),
            client=lambda: httpx.AsyncClient(transport=transport, base_url="http://embeddings-pod"),
        )


async def embed_with(pod: Pod, token: str | None) -> AIPlatformError | None:
    """The error an embedding through a remote engine presenting ``token`` ends in, if any."""
    async with pod.remote(token) as remote:
        try:
            answer = await remote.invoke(EMBED, EmbeddingRequest(input="hello"))
        except AIPlatformError as exc:
            return exc
    assert len(answer.data) == 1
    return None


async def test_the_service_token_is_served(pod: Pod) -> None:
    assert await embed_with(pod, POD_AUTH.service_token) is None


async def test_a_wrong_service_token_is_refused_as_unauthenticated(pod: Pod) -> None:
    refused = await embed_with(pod, WRONG_TOKEN)
    assert isinstance(refused, AuthenticationError)
    assert (refused.status_code, refused.code) == (401, "invalid_service_token")


async def test_a_remote_engine_without_the_service_token_is_refused(pod: Pod) -> None:
    """The adapter names the tenant it acts for on every call, which only the service
    credential may do: without it the pod answers 403 before any engine runs."""
    refused = await embed_with(pod, None)
    assert isinstance(refused, PermissionDeniedError)
    assert (refused.status_code, refused.code) == (403, "tenant_header_not_allowed")
    async with pod.remote(None) as remote:
        with pytest.raises(PermissionDeniedError):
            await remote.list_models()


async def test_a_call_with_no_credential_at_all_is_unauthenticated(pod: Pod) -> None:
    async with pod.client() as client:
        for answer in (
            await client.post("/v1/embeddings", json=EMBED_BODY),
            await client.get("/v1/models"),
        ):
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"]["code"] == "missing_api_key"
        assert (await client.get("/health")).status_code == 200


async def test_a_tenant_is_named_only_with_the_service_credential(pod: Pod) -> None:
    tenant = {TENANT_HEADER: "acme"}
    async with pod.client() as client:
        bare = await client.post("/v1/embeddings", json=EMBED_BODY, headers=tenant)
        assert bare.status_code == 403, bare.text
        assert bare.json()["error"]["code"] == "tenant_header_not_allowed"
        wrong = {**tenant, SERVICE_TOKEN_HEADER: WRONG_TOKEN}
        refused = await client.post("/v1/embeddings", json=EMBED_BODY, headers=wrong)
        assert refused.status_code == 401, refused.text
        service = {**tenant, SERVICE_TOKEN_HEADER: POD_AUTH.service_token}
        served = await client.post("/v1/embeddings", json=EMBED_BODY, headers=service)
        assert served.status_code == 200, served.text


def test_a_pod_prints_no_password_and_keeps_its_identities_in_its_own_folder(
    served: ServerProcess,
) -> None:
    log = served.log()
    assert POD_AUTH.admin_password not in log
    assert POD_AUTH.service_token not in log
    assert "password:" not in log
    assert (served.folder / "auth" / "auth.sqlite3").exists()
