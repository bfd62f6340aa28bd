"""A client that trickles its body is cut off, and past ``limit_concurrency`` connections new
requests are refused at once, so slow clients cannot hold a server's sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.support import FAKE_EMBEDDINGS_ENV, ServerProcess

#: A guard against a server that never gives up on the client, not a speed check.
GUARD_S = 15.0
BODY = json.dumps({"input": "hello " * 20}).encode()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {
        **FAKE_EMBEDDINGS_ENV,
        "AIPLATFORM_SERVER__BODY_TIMEOUT_S": "1",
        "AIPLATFORM_SERVER__LIMIT_CONCURRENCY": "3",
    }
    with ServerProcess(["--engines", "embeddings"], env) as running:
        yield running


def start_trickle(server: ServerProcess) -> socket.socket:
    """A connection that has sent its request's head and the first byte of its body."""
    client = socket.create_connection(("127.0.0.1", server.port))
    client.settimeout(0.25)
    head = (
        "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(BODY)}\r\n\r\n"
    ).encode()
    client.sendall(head + BODY[:1])
    return client


def test_a_trickled_body_is_408_and_the_connection_closed(server: ServerProcess) -> None:
    client = start_trickle(server)
    answer = b""
    sent = 1
    deadline = time.monotonic() + GUARD_S
    with client:
        while True:
            assert time.monotonic() < deadline, f"still reading the trickle; got {answer!r}"
            if sent < len(BODY):
                try:
                    client.sendall(BODY[sent : sent + 1])  # one byte every 0.25 s
                    sent += 1
                except OSError:
                    pass  # the server closed its side
            try:
                data = client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break  # closed by the server
            answer += data
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"body_timeout" in answer
    assert sent < len(BODY)  # cut off before the body was complete


def test_past_limit_concurrency_new_requests_are_503(server: ServerProcess) -> None:
    with ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(start_trickle(server))
        refused = httpx.post(f"{server.url}/v1/embeddings", json={"input": "hi"}, timeout=5)
        assert refused.status_code == 503
    # the slow connections are gone (closed here, or cut off by the body deadline)
    deadline = time.monotonic() + GUARD_S
    while True:
        reply = httpx.post(f"{server.url}/v1/embeddings", json={"input": "hi"}, timeout=5)
        if reply.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert reply.status_code == 200
