"""The embeddings engine answers the same in every mode."""

from __future__ import annotations

import base64

import anyio
import numpy as np
import pytest

from aiplatform.api.openai import EmbeddingRequest, EmbeddingResponse
from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings import EMBED
from aiplatform.errors import InvalidRequestError, NotFoundError

pytestmark = pytest.mark.anyio

SENTENCES = [
    "The cat sits on the mat.",
    "A dog barks at the mailman.",
    "Quarterly revenue grew by twelve percent.",
]


def vectors(response: EmbeddingResponse) -> np.ndarray:
    rows = []
    for item in sorted(response.data, key=lambda item: item.index):
        if isinstance(item.embedding, str):
            rows.append(np.frombuffer(base64.b64decode(item.embedding), dtype="<f4"))
        else:
            rows.append(np.asarray(item.embedding, dtype=np.float32))
    return np.stack(rows)


async def both(
    engine: Engine, reference: Engine, request: EmbeddingRequest
) -> tuple[EmbeddingResponse, EmbeddingResponse]:
    return await engine.invoke(EMBED, request), await reference.invoke(EMBED, request)


async def test_single_string_matches_reference(engine: Engine, reference: Engine) -> None:
    got, want = await both(engine, reference, EmbeddingRequest(input=SENTENCES[0]))
    assert len(got.data) == 1
    assert got.data[0].index == 0
    np.testing.assert_allclose(vectors(got), vectors(want), atol=1e-6)
    assert np.linalg.norm(vectors(got)[0]) == pytest.approx(1.0, abs=1e-5)
    assert got.model == want.model
    assert got.usage == want.usage
    assert got.usage.prompt_tokens > 0


async def test_list_keeps_order(engine: Engine, reference: Engine) -> None:
    got, want = await both(engine, reference, EmbeddingRequest(input=SENTENCES))
    assert [item.index for item in got.data] == [0, 1, 2]
    np.testing.assert_allclose(vectors(got), vectors(want), atol=1e-6)
    singles = [await reference.invoke(EMBED, EmbeddingRequest(input=s)) for s in SENTENCES]
    np.testing.assert_allclose(vectors(got), np.vstack([vectors(s) for s in singles]), atol=1e-6)
    # different sentences really differ
    assert not np.allclose(vectors(got)[0], vectors(got)[2], atol=1e-3)


async def test_base64_equals_float(engine: Engine, reference: Engine) -> None:
    encoded = await engine.invoke(
        EMBED, EmbeddingRequest(input=SENTENCES, encoding_format="base64")
    )
    assert all(isinstance(item.embedding, str) for item in encoded.data)
    plain = await reference.invoke(EMBED, EmbeddingRequest(input=SENTENCES))
    np.testing.assert_allclose(vectors(encoded), vectors(plain), atol=1e-6)


async def test_dimensions_shorten_and_renormalize(engine: Engine, reference: Engine) -> None:
    got, want = await both(engine, reference, EmbeddingRequest(input=SENTENCES, dimensions=64))
    assert vectors(got).shape == (3, 64)
    np.testing.assert_allclose(vectors(got), vectors(want), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors(got), axis=1), 1.0, atol=1e-5)


async def test_token_arrays(engine: Engine, reference: Engine) -> None:
    one, want_one = await both(engine, reference, EmbeddingRequest(input=[101, 2000, 3000]))
    assert len(one.data) == 1
    np.testing.assert_allclose(vectors(one), vectors(want_one), atol=1e-6)
    many, want_many = await both(engine, reference, EmbeddingRequest(input=[[2000, 3000], [4000]]))
    assert len(many.data) == 2
    np.testing.assert_allclose(vectors(many), vectors(want_many), atol=1e-6)


async def test_concurrent_requests_each_get_their_own_vectors(
    engine: Engine, reference: Engine
) -> None:
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(40)]
    results: dict[int, np.ndarray] = {}

    async def one(i: int) -> None:
        results[i] = vectors(await engine.invoke(EMBED, EmbeddingRequest(input=texts[i])))[0]

    async with anyio.create_task_group() as task_group:
        for i in range(len(texts)):
            task_group.start_soon(one, i)
    expected = vectors(await reference.invoke(EMBED, EmbeddingRequest(input=texts)))
    np.testing.assert_allclose(np.vstack([results[i] for i in range(40)]), expected, atol=1e-5)


async def test_unknown_model_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFoundError) as caught:
        await engine.invoke(EMBED, EmbeddingRequest(input="x", model="no-such-model"))
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert "no-such-model" in caught.value.message


@pytest.mark.parametrize(
    "bad",
    [
        EmbeddingRequest(input=""),
        EmbeddingRequest(input=["ok", ""]),
        EmbeddingRequest(input=[]),
        EmbeddingRequest(input=["text", 5]),
        EmbeddingRequest(input=[[]]),
        EmbeddingRequest(input=[-1, 2]),
        EmbeddingRequest(input=["x"] * 65),
        EmbeddingRequest(input="x", dimensions=100_000),
    ],
    ids=[
        "empty",
        "empty-item",
        "no-items",
        "mixed",
        "empty-tokens",
        "negative-token",
        "too-many",
        "too-many-dimensions",
    ],
)
async def test_bad_input_is_invalid_request(engine: Engine, bad: EmbeddingRequest) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await engine.invoke(EMBED, bad)
    assert caught.value.status_code == 400
    assert caught.value.message


async def test_too_long_input_names_the_numbers(engine: Engine) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await engine.invoke(EMBED, EmbeddingRequest(input="word " * 2000))
    assert caught.value.code == "context_length_exceeded"
    assert "2000 tokens" in caught.value.message


async def test_models_and_status(engine: Engine, reference: Engine) -> None:
    got = [card.id for card in await engine.list_models()]
    assert got == [card.id for card in await reference.list_models()]
    with anyio.fail_after(60):  # loading happens in the background
        while not (status := await engine.status()).ready:
            assert status.detail in {"loading", "http://embeddings-pod/ready answered 503"}
            await anyio.sleep(0.05)
    assert status.mode == engine.mode
