"""Helpers for tests that need a real server process on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """An ``aiplatform serve`` child process; stop and start it again on the same port."""

    def __init__(self, args: list[str], env: Mapping[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._args = args
        # Servers get the fake LLM and audio engines unless a test asks for real ones, and
        # keep what they store in a folder of their own.
        folder = Path(tempfile.mkdtemp(prefix="aiplatform-test-"))
        self.folder = folder
        data = {
            "AIPLATFORM_ENGINES__SPEAKERS__DATA_DIR": str(folder / "speakers"),
            "AIPLATFORM_ENGINES__RAG__DATA_DIR": str(folder / "rag"),
        }
        self._env = {**_clean_env(), **FAKE_LLM_ENV, **FAKE_AUDIO_ENV, **data, **env}
        self._log = folder / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True, timeout_s: float = 180.0) -> None:
        command = [sys.executable, "-m", "aiplatform", "serve", "--port", str(self.port)]
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [*command, *self._args], env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait("/ready" if wait_ready else "/health", timeout_s)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def _wait(self, path: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"server exited with {self._proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"server not up in {timeout_s}s:\n{self.log()}")


@contextmanager
def running_server(
    *args: str, env: Mapping[str, str] | None = None, wait_ready: bool = True
) -> Iterator[ServerProcess]:
    server = ServerProcess(list(args), env or {})
    server.start(wait_ready=wait_ready)
    try:
        yield server
    finally:
        server.stop()


def _clean_env() -> dict[str, str]:
    """This process's environment without settings variables the test did not ask for."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIPLATFORM_")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


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
