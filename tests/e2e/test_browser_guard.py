"""A real ``aiplatform serve`` on a loopback port, sent what browsers send, raw: JSON as
``text/plain``, a rebinding ``Host``, another site's ``Origin`` (on a POST, a preflight and a
WebSocket handshake), and the same from the one origin the settings allow."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess, running_server

pytestmark = pytest.mark.anyio

APP = "http://app.example"
EVIL = "http://evil.example"
EMBED = b'{"input": "hello"}'
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """Embeddings and live transcription on their fakes, bound to 127.0.0.1, allowing
    :data:`APP`."""
    env = {**FAKE_EMBEDDINGS_ENV, "AIPLATFORM_HTTP__CORS_ORIGINS": f'["{APP}"]'}
    with running_server("--engines", "embeddings,asr", env=env) as running:
        yield running


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def test_what_a_page_sends_is_refused_and_what_clients_send_is_served(
    server: ServerProcess,
) -> None:
    own = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        plain = http.post("/v1/embeddings", content=EMBED, headers={"content-type": "text/plain"})
        served = http.post("/v1/embeddings", content=EMBED, headers=JSON)
        rebound = http.get("/health", headers={"host": f"evil.example:{server.port}"})
        localhost = http.get("/health", headers={"host": f"localhost:{server.port}"})
        foreign = http.post("/v1/embeddings", content=EMBED, headers={**JSON, "origin": EVIL})
        same_site = http.post("/v1/embeddings", content=EMBED, headers={**JSON, "origin": own})
        allowed = http.post("/v1/embeddings", content=EMBED, headers={**JSON, "origin": APP})
        preflight = http.options(
            "/v1/embeddings",
            headers={
                "origin": APP,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
    assert (plain.status_code, error_code(plain)) == (415, "unsupported_media_type")
    assert served.status_code == 200
    assert (rebound.status_code, error_code(rebound)) == (400, "host_not_allowed")
    assert localhost.status_code == 200
    assert (foreign.status_code, error_code(foreign)) == (403, "origin_not_allowed")
    assert "access-control-allow-origin" not in foreign.headers
    assert same_site.status_code == 200
    assert "access-control-allow-origin" not in same_site.headers
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == APP
    assert "POST" in preflight.headers["access-control-allow-methods"]


async def test_a_websocket_from_another_site_is_refused_before_it_opens(
    server: ServerProcess,
) -> None:
    url = f"ws://127.0.0.1:{server.port}/v1/ws/transcribe"
    with anyio.fail_after(30):
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url, origin=EVIL)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        async with websockets.connect(url, origin=APP) as socket:  # type: ignore[arg-type]
            await socket.send('{"type": "end"}')
            assert "session.done" in str(await socket.recv())
