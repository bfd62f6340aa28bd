"""docs/analytics.md is true: its engine reference is generated from the engines, and every
curl and Python example in it runs against a real server and answers without an error."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiplatform.engines.analytics import docs
from tests.support import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
_BLOCK = re.compile(r"```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)
_HEREDOC = re.compile(r"<<'JSON'\n(?P<json>.*?)\nJSON\n", re.S)
_URL = "http://127.0.0.1:8000"


def _blocks(lang: str) -> list[str]:
    return [m["code"] for m in _BLOCK.finditer(DOC.read_text()) if m["lang"] == lang]


def test_the_engine_reference_is_current() -> None:
    text = DOC.read_text()
    assert docs.render(text) == text, "run: make docs"


def _documents(output: str) -> list[dict[str, object]]:
    """The JSON objects curl printed one after another (without newlines between them), and
    the SSE events of a streamed answer."""
    decoder = json.JSONDecoder()
    found = []
    text = "\n".join(
        line.removeprefix("data: ") for line in output.splitlines() if line != "data: [DONE]"
    )
    index = 0
    while (start := text.find("{", index)) != -1:
        value, index = decoder.raw_decode(text, start)
        found.append(value)
    return found


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # with the engines faiss_retrieval and rag_evaluation call, on their defaults, as the
    # monolith the examples are written for has them
    process = ServerProcess(["--engines", "analytics,datasets,embeddings,rag"], {})
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_every_curl_example_answers_without_an_error(server: ServerProcess, tmp_path: Path) -> None:
    blocks = _blocks("bash")
    assert len(blocks) >= 4
    for code in blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code.replace(_URL, server.url)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{code[:300]}\n{done.stderr}"
        assert done.stdout.strip(), code[:300]
        for answer in _documents(done.stdout):
            assert answer.get("object") in (
                "analytics.result",
                "analytics.progress",
                "analytics.job",
                "dataset.deleted",
            ), str(answer)[:300]
            assert answer.get("error") is None, str(answer)[:2000]


@pytest.mark.slow
def test_every_python_example_answers_without_an_error(server: ServerProcess) -> None:
    text = DOC.read_text()
    engine_blocks = [m for m in _BLOCK.finditer(text) if m["lang"] in ("bash", "python")]
    ran = 0
    for before, block in itertools.pairwise(engine_blocks):
        if block["lang"] != "python":
            continue
        heredoc = _HEREDOC.search(before["code"])
        assert heredoc is not None, "a Python example follows the curl example it reuses"
        program = f"body = {json.loads(heredoc['json'])!r}\n" + block["code"].replace(
            _URL, server.url
        )
        done = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{block['code'][:200]}\n{done.stderr[-2000:]}"
        assert done.stdout.strip()
        ran += 1
    assert ran == len(docs.METHODS)
