"""LangChain's OpenAI clients (``langchain-openai``), unmodified, against a live server.

``ChatOpenAI`` and ``OpenAIEmbeddings`` as users configure them for an OpenAI-compatible server:
``base_url`` ending in ``/v1``, any API key, the served model names, and for embeddings
``check_embedding_ctx_length=False``. Without that flag ``OpenAIEmbeddings`` tokenizes each text
with tiktoken and sends token ids, which the server reads with the served model's own tokenizer;
the last tests show what then happens.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
import tiktoken  # a dependency of langchain-openai
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.support import FAKE_EMBEDDINGS_ENV, FAKE_LLM_MODEL, ServerProcess

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
TEXTS = ["The weather is lovely today.", "Stock markets fell sharply.", "It is sunny outside."]
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """A monolith with every engine on its fake backend."""
    server = ServerProcess([], FAKE_EMBEDDINGS_ENV)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """The clients' HTTP connections, closed when the test ends (LangChain never closes its
    own)."""
    with httpx.Client(timeout=30) as client:
        yield client


def chat_model(server: ServerProcess, http: httpx.Client) -> ChatOpenAI:
    return ChatOpenAI(
        model=FAKE_LLM_MODEL,
        base_url=f"{server.url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        temperature=0,
        seed=3,
        max_tokens=20,  # type: ignore[call-arg]
        max_retries=0,
        http_client=http,
    )


def embeddings(server: ServerProcess, http: httpx.Client, **options: object) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model=EMBEDDING_MODEL,
        base_url=f"{server.url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        max_retries=0,
        http_client=http,
        **options,  # type: ignore[arg-type]
    )


def served_vectors(server: ServerProcess, value: object) -> np.ndarray:
    """The server's own vectors for an ``input`` value, asked for directly."""
    response = httpx.post(
        f"{server.url}/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": value}, timeout=30
    )
    assert response.status_code == 200, response.text
    return np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)


def served_answer(server: ServerProcess) -> str:
    body = {
        "model": FAKE_LLM_MODEL,
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "seed": 3,
        "max_tokens": 20,
    }
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def test_chat_invoke(server: ServerProcess, http: httpx.Client) -> None:
    message = chat_model(server, http).invoke(QUESTION)
    assert isinstance(message, AIMessage)
    assert message.content
    assert message.content == served_answer(server)
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] > 0


def test_chat_stream(server: ServerProcess, http: httpx.Client) -> None:
    chunks = list(chat_model(server, http).stream(QUESTION))
    pieces = [chunk.content for chunk in chunks if chunk.content]
    assert len(pieces) > 1  # streamed, not one whole answer
    assert "".join(str(piece) for piece in pieces) == served_answer(server)


def test_embed_documents(server: ServerProcess, http: httpx.Client) -> None:
    vectors = embeddings(server, http, check_embedding_ctx_length=False).embed_documents(TEXTS)
    assert len(vectors) == len(TEXTS)
    np.testing.assert_allclose(np.array(vectors), served_vectors(server, TEXTS), atol=1e-6)


def test_embed_query(server: ServerProcess, http: httpx.Client) -> None:
    vector = embeddings(server, http, check_embedding_ctx_length=False).embed_query(TEXTS[0])
    assert len(vector) == 384
    np.testing.assert_allclose(np.array(vector), served_vectors(server, TEXTS[0])[0], atol=1e-6)


@pytest.fixture
def offline_tiktoken(monkeypatch: pytest.MonkeyPatch) -> tiktoken.Encoding:
    """A tiktoken encoding that needs no download, standing in for ``cl100k_base``.

    ``OpenAIEmbeddings`` falls back to ``cl100k_base`` for a model tiktoken does not know, and
    tiktoken downloads that file on first use (it fails where there is no network). Byte-level
    ids are still another tokenizer's ids, which is all these tests need.
    """
    encoding = tiktoken.Encoding(
        name="bytes",
        pat_str=r"\s?\S+|\s+",
        mergeable_ranks={bytes([byte]): byte for byte in range(256)},
        special_tokens={},
    )
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: encoding)
    return encoding


def test_without_the_flag_token_ids_are_sent(
    server: ServerProcess, http: httpx.Client, offline_tiktoken: tiktoken.Encoding
) -> None:
    """By default the client sends tiktoken's ids, which the server cannot tell from its own on
    the fake backend (it has no vocabulary): the vectors are those of the ids, not the text."""
    vectors = np.array(embeddings(server, http).embed_documents(TEXTS))
    ids = [offline_tiktoken.encode_ordinary(text) for text in TEXTS]
    np.testing.assert_allclose(vectors, served_vectors(server, ids), atol=1e-6)
    similarity = np.sum(vectors * served_vectors(server, TEXTS), axis=1)
    assert (similarity < 0.5).all()


@pytest.mark.slow
def test_without_the_flag_a_real_model_refuses_foreign_token_ids(
    http: httpx.Client, offline_tiktoken: tiktoken.Encoding
) -> None:
    """A real model's tokenizer tells foreign ids from its own: a 400 that says what to do,
    never vectors of garbage."""
    env = {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": "sentence_transformers"}
    server = ServerProcess(["--engines", "embeddings"], env)
    server.start()
    try:
        with pytest.raises(openai.BadRequestError) as refused:
            embeddings(server, http).embed_documents(TEXTS)
        assert "check_embedding_ctx_length=False" in refused.value.message
        right = embeddings(server, http, check_embedding_ctx_length=False).embed_documents(TEXTS)
        np.testing.assert_allclose(np.array(right), served_vectors(server, TEXTS), atol=1e-5)
    finally:
        server.stop()
