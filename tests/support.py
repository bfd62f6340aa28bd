"""Helpers for tests that need a real server process on a loopback port (the general ones are
in :mod:`aiplatform.testing`)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from aiplatform import testing
from aiplatform.testing import free_port

__all__ = [
    "FAKE_AUDIO_ENV",
    "FAKE_EMBEDDINGS_ENV",
    "FAKE_LLM_ENV",
    "FAKE_LLM_MODEL",
    "ServerProcess",
    "admin_api_key",
    "free_port",
    "llama_cpp_server",
    "running_server",
]

FAKE_EMBEDDINGS_ENV = {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": "fake"}
FAKE_LLM_MODEL = "fake-llm"
FAKE_LLM_ENV = {
    "AIPLATFORM_ENGINES__LLM__MODELS": f'[{{"name": "{FAKE_LLM_MODEL}", "backend": "fake"}}]'
}

#: Audio engines on their fakes, with enrolled speakers kept in a folder of the test's own.
FAKE_AUDIO_ENV = {
    "AIPLATFORM_ENGINES__ASR__BACKEND": "fake",
    "AIPLATFORM_ENGINES__SPEAKERS__BACKEND": "fake",
    "AIPLATFORM_ENGINES__DIARIZATION__BACKEND": "fake",
    "AIPLATFORM_ENGINES__EMOTION__BACKEND": "fake",
}


class ServerProcess(testing.ServerProcess):
    """``aiplatform serve`` as the tests run it: on the fake LLM and audio engines unless a test
    asks for real ones, keeping what it stores in a folder of its own."""

    def __init__(self, args: list[str], env: Mapping[str, str], port: int | None = None) -> None:
        data = Path(tempfile.mkdtemp(prefix="aiplatform-data-"))
        defaults = {
            **FAKE_LLM_ENV,
            **FAKE_AUDIO_ENV,
            "AIPLATFORM_ENGINES__SPEAKERS__DATA_DIR": str(data / "speakers"),
            "AIPLATFORM_ENGINES__RAG__DATA_DIR": str(data / "rag"),
            "AIPLATFORM_ENGINES__DATASETS__DATA_DIR": str(data / "datasets"),
            "AIPLATFORM_ENGINES__ANALYTICS__DATA_DIR": str(data / "analytics"),
        }
        super().__init__(args, {**defaults, **env}, port)


@contextmanager
def running_server(
    *args: str,
    env: Mapping[str, str] | None = None,
    wait_ready: bool = True,
    timeout_s: float = 180.0,
) -> Iterator[ServerProcess]:
    server = ServerProcess(list(args), env or {})
    server.start(wait_ready=wait_ready, timeout_s=timeout_s)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def llama_cpp_server(model_path: str, alias: str, *extra: str) -> Iterator[str]:
    """llama-cpp-python's own OpenAI server on a loopback port (a third-party upstream)."""
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", model_path,
        "--model_alias", alias, "--n_ctx", "1024",
        "--host", "127.0.0.1", "--port", str(port), *extra,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if time.monotonic() > deadline or process.poll() is not None:
                raise TimeoutError("llama_cpp.server did not start")
            try:
                if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def admin_api_key(server: testing.ServerProcess, password: str, name: str = "test") -> str:
    """A new API key of the admin's tenant, made on ``server`` by logging in as ``admin``."""
    login = httpx.post(
        f"{server.url}/v1/auth/login", json={"username": "admin", "password": password}
    )
    assert login.status_code == 200, login.text
    created = httpx.post(
        f"{server.url}/v1/keys",
        json={"name": name},
        headers={"authorization": f"Bearer {login.json()['access_token']}"},
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key
