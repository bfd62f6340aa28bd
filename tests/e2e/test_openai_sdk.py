"""The official ``openai`` SDK, unmodified, against a live monolith and a live split deployment."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest

from tests.support import FAKE_LLM_MODEL, ServerProcess

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["The weather is lovely today.", "Stock markets fell sharply.", "It is sunny outside."]


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def embed(server: ServerProcess, encoding_format: str | None) -> np.ndarray:
    kwargs = {} if encoding_format is None else {"encoding_format": encoding_format}
    with client(server) as sdk:
        result = sdk.embeddings.create(model=MODEL, input=TEXTS, **kwargs)  # type: ignore[arg-type]
    assert result.model == MODEL
    assert [item.index for item in result.data] == [0, 1, 2]
    assert result.usage.prompt_tokens > 0
    if encoding_format == "base64":  # asked for explicitly, the SDK hands back the raw string
        rows = [np.frombuffer(base64.b64decode(item.embedding), "<f4") for item in result.data]  # type: ignore[arg-type]
        return np.stack(rows)
    # not asked for, the SDK requests base64 itself and decodes it to floats
    return np.array([item.embedding for item in result.data], dtype=np.float32)


@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
def test_embeddings_same_in_monolith_and_split_mode(
    monolith: ServerProcess, gateway: ServerProcess, encoding_format: str | None
) -> None:
    whole = embed(monolith, encoding_format)
    split = embed(gateway, encoding_format)
    assert whole.shape == (3, 384)
    np.testing.assert_allclose(split, whole, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)


def test_float_and_base64_agree(monolith: ServerProcess) -> None:
    np.testing.assert_allclose(embed(monolith, "float"), embed(monolith, "base64"), atol=1e-7)


def test_similar_texts_are_closer(monolith: ServerProcess, backend_name: str) -> None:
    if backend_name == "fake":
        pytest.skip("the fake backend hashes words; meaning needs the real model")
    vectors = embed(monolith, "float")
    weather, stocks, sunny = vectors
    assert weather @ sunny > weather @ stocks


def test_models_list(monolith: ServerProcess, gateway: ServerProcess) -> None:
    for server in (monolith, gateway):
        with client(server) as sdk:
            listed = [model.id for model in sdk.models.list()]
            assert listed == [MODEL, FAKE_LLM_MODEL, "whisper-base", "emotion-lexicon"]


def test_errors_raise_the_sdks_exceptions(monolith: ServerProcess, gateway: ServerProcess) -> None:
    for server in (monolith, gateway):
        with client(server) as sdk:
            with pytest.raises(openai.NotFoundError) as not_found:
                sdk.embeddings.create(model="text-embedding-3-large", input="hi")
            assert not_found.value.code == "model_not_found"
            with pytest.raises(openai.BadRequestError) as bad:
                sdk.embeddings.create(model=MODEL, input="")
            assert "empty" in bad.value.message
