"""The faiss_retrieval engine: its search equals a brute-force cosine ranking, on vectors made
here and on the texts a remote embeddings engine embeds; the planted nearest row is found;
it needs its prepare step and an embeddings engine, and refuses impossible requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from aiplatform.api.analytics import request_type
from aiplatform.engines.analytics.engine import LocalAnalyticsEngine
from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.operations import METHOD_OPERATIONS
from aiplatform.engines.analytics.settings import AnalyticsSettings
from aiplatform.engines.base import Engine
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.fake import FakeEmbeddingBackend
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.errors import EngineUnavailableError, InternalError, InvalidRequestError
from aiplatform.testing import asgi_remote
from tests.analytics import assert_valid_charts, run_direct

NAME = "faiss_retrieval"
DIMENSION = 16


def _cosines(vectors: np.ndarray, probe: np.ndarray) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    result: np.ndarray = unit @ (probe / np.linalg.norm(probe))
    return result


def _planted(seed: int = 0) -> tuple[Records, dict[str, Any], np.ndarray, np.ndarray]:
    """60 rows of random vectors (row 9 without a text, so not embedded); row 41 is the query
    plus a little noise, at a different length."""
    rng = np.random.default_rng(seed)
    query = rng.normal(size=DIMENSION)
    data: Records = [{"id": f"r{k}", "text": f"text {k}", "n": k} for k in range(60)]
    data[9]["text"] = None
    rows = [k for k in range(60) if k != 9]
    vectors = rng.normal(size=(len(rows), DIMENSION))
    vectors[rows.index(41)] = 3.0 * (query + 0.05 * rng.normal(size=DIMENSION))
    prepared = {
        "model": "hand-made",
        "dimension": DIMENSION,
        "rows": rows,
        "vectors": vectors.astype("<f4").tobytes(),
        "query": query.astype("<f4").tobytes(),
    }
    return data, prepared, vectors.astype(np.float32), query.astype(np.float32)


def test_the_planted_row_is_nearest_and_the_ranking_is_brute_force_cosine() -> None:
    data, prepared, vectors, query = _planted()
    params = {"text_column": "text", "query": "anything", "row": 41, "k": 5}
    direct = run_direct(NAME, data, params, prepared=prepared)
    result = direct.result
    rows = prepared["rows"]
    cosines = _cosines(vectors, query)
    want = np.argsort(-cosines)[:5]
    assert [match.row for match in result.query_matches] == [rows[i] for i in want]
    assert result.query_matches[0].row == 41
    assert [match.score for match in result.query_matches] == pytest.approx(
        cosines[want].tolist(), abs=1e-5
    )
    # the row's own neighbours: itself left out
    around = _cosines(vectors, vectors[rows.index(41)])
    around[rows.index(41)] = -np.inf
    nearest = np.argsort(-around)[:5]
    assert [match.row for match in result.row_matches] == [rows[i] for i in nearest]
    assert 41 not in [match.row for match in result.row_matches]
    first = result.query_matches[0]
    assert (first.text, first.values) == ("text 41", {"id": "r41", "text": "text 41", "n": 41})
    assert (result.indexed, result.skipped, result.dimension) == (59, 1, DIMENSION)
    assert any("1 rows without a text" in warning for warning in direct.warnings)
    assert_valid_charts(direct.charts)
    fractions = [fraction for fraction, _ in direct.progress]
    assert fractions == sorted(fractions)


def test_the_columns_asked_for_are_the_values_returned() -> None:
    data, prepared, _, _ = _planted(1)
    params = {"text_column": "text", "query": "q", "k": 2, "columns": ["n"]}
    result = run_direct(NAME, data, params, prepared=prepared).result
    assert result.row_matches is None
    assert all(set(match.values) == {"n"} for match in result.query_matches)
    assert len(result.query_matches) == 2


def test_without_its_prepare_step_the_computation_is_an_internal_error() -> None:
    data, _, _, _ = _planted()
    with pytest.raises(InternalError) as failed:
        run_direct(NAME, data, {"text_column": "text", "query": "q"})
    assert failed.value.code == "not_prepared"


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"text_column": "text"}, "missing_param", "params.query"),
        ({"text_column": "text", "row": 60}, "row_out_of_range", "params.row"),
        ({"text_column": "text", "row": 9}, "missing_text", "params.row"),
        ({"text_column": "text", "query": "  "}, "blank_query", "params.query"),
        (
            {"text_column": "text", "query": "q", "columns": ["n", "x"]},
            "unknown_column",
            "params.columns",
        ),
        ({"text_column": "nothing", "query": "q"}, "all_missing", "params.text_column"),
    ],
)
def test_an_impossible_request_is_a_400_naming_the_param(
    params: dict[str, Any], code: str, param: str
) -> None:
    data, prepared, _, _ = _planted()
    data = [{**row, "nothing": None} for row in data]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct(NAME, data, params, prepared=prepared)
    assert (refused.value.code, refused.value.param) == (code, param)


# ----------------------------------------------------------------------------- through engines

TEXTS = [
    "The quarterly revenue grew by ten percent in Europe.",
    "Our cat sleeps on the warm windowsill every afternoon.",
    "The train to Berlin was delayed by forty minutes.",
    "Bake the bread at two hundred degrees for half an hour.",
    "The football team won the cup after extra time.",
    "Heavy rain flooded the streets of the old town.",
    "The new phone has a larger screen and a faster chip.",
    "She planted tomatoes and basil in the garden.",
]
#: Shares most of its words with TEXTS[5].
QUERY = "rain flooded the old streets"


def _request(data: Records, **params: Any) -> Any:
    method = METHODS[NAME]
    return request_type(method)(data=data, params=msgspec.convert(params, method.params))


def _analytics(tmp_path: Path, engines: dict[str, Engine]) -> LocalAnalyticsEngine:
    settings = AnalyticsSettings(data_dir=str(tmp_path / "analytics"), max_concurrency=1)
    return LocalAnalyticsEngine(settings, engines=engines)


@pytest.fixture
async def remote_embeddings() -> AsyncIterator[Engine]:
    """The fake embeddings engine, reached over ASGI through the platform's app."""
    settings = EmbeddingsSettings(backend="fake", model="fake-words", max_inputs=64)
    local = LocalEmbeddingsEngine(settings)
    async with local, asgi_remote(local, settings) as remote:
        yield remote


@pytest.mark.anyio
async def test_a_remote_embeddings_engine_finds_the_planted_row(
    tmp_path: Path, remote_embeddings: Engine
) -> None:
    """More rows than one embeddings request takes (batches), a row without a text; the
    ranking equals the cosine of the fake backend's own vectors."""
    data: Records = [{"text": TEXTS[k % len(TEXTS)] + f" Note {k}."} for k in range(150)]
    data[5] = {"text": TEXTS[5]}
    data[77] = {"text": None}
    async with _analytics(tmp_path, {"embeddings": remote_embeddings}) as analytics:
        response = await analytics.invoke(
            METHOD_OPERATIONS[NAME], _request(data, text_column="text", query=QUERY, k=4)
        )
    result = response.result
    assert result.model == "fake-words"  # embedded by that engine
    assert result.query_matches[0].row == 5
    assert (result.indexed, result.skipped) == (149, 1)
    rows = [k for k in range(150) if k != 77]
    backend = FakeEmbeddingBackend()
    vectors = backend.encode([str(data[k]["text"]) for k in rows]).vectors
    cosines = _cosines(vectors, backend.encode([QUERY]).vectors[0])
    want = np.argsort(-cosines, kind="stable")[:4]
    assert [match.score for match in result.query_matches] == pytest.approx(
        cosines[want].tolist(), abs=1e-5
    )
    assert_valid_charts(response.charts)


@pytest.mark.anyio
async def test_the_example_answers_through_the_engine(
    tmp_path: Path, remote_embeddings: Engine
) -> None:
    method = METHODS[NAME]
    request = request_type(method)(data=method.example.data, params=method.example.params)
    async with _analytics(tmp_path, {"embeddings": remote_embeddings}) as analytics:
        first = await analytics.invoke(METHOD_OPERATIONS[NAME], request)
        again = await analytics.invoke(METHOD_OPERATIONS[NAME], request)
    assert first == again
    assert first.result.query_matches[0].values["topic"] == "billing"
    assert len(first.result.row_matches) == 3
    assert first.result.skipped == 1
    assert_valid_charts(first.charts)


@pytest.mark.anyio
async def test_without_an_embeddings_engine_it_is_a_503(tmp_path: Path) -> None:
    async with _analytics(tmp_path, {}) as analytics:
        with pytest.raises(EngineUnavailableError) as refused:
            await analytics.invoke(
                METHOD_OPERATIONS[NAME],
                _request([{"text": t} for t in TEXTS], text_column="text", query=QUERY),
            )
    assert refused.value.status_code == 503
    assert refused.value.code == "engine_unavailable"


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_paraphrase_finds_its_row_with_minilm(tmp_path: Path) -> None:
    """all-MiniLM-L6-v2: a query that shares no content word with its planted row."""
    settings = EmbeddingsSettings(backend="sentence_transformers", max_inputs=64)
    local = LocalEmbeddingsEngine(settings)
    texts = [*TEXTS, "I would like my money back for the broken kettle I bought."]
    async with local, _analytics(tmp_path, {"embeddings": local}) as analytics:
        response = await analytics.invoke(
            METHOD_OPERATIONS[NAME],
            _request(
                [{"text": text} for text in texts],
                text_column="text",
                query="How do I get a refund for a faulty purchase?",
                k=3,
            ),
        )
    assert response.result.query_matches[0].row == len(texts) - 1
    assert response.result.dimension == 384


@pytest.mark.anyio
async def test_a_key_for_analytics_only_reaches_no_other_engine(
    tmp_path: Path, remote_embeddings: Engine
) -> None:
    """An analytic engine calls others as its caller: a key limited to analytics is refused
    (403), for a run and for a job, before anything is embedded."""
    from aiplatform.api.analytics import JobRequest
    from aiplatform.auth.identity import Identity, acting_identity
    from aiplatform.engines.analytics.operations import SUBMIT_JOB
    from aiplatform.errors import PermissionDeniedError

    limited = Identity(
        kind="key", subject="k1", tenant="default", role="member", engines=("analytics",)
    )
    data = [{"text": t} for t in TEXTS]
    async with _analytics(tmp_path, {"embeddings": remote_embeddings}) as analytics:
        with acting_identity(limited):
            with pytest.raises(PermissionDeniedError) as refused:
                await analytics.invoke(
                    METHOD_OPERATIONS[NAME], _request(data, text_column="text", query=QUERY)
                )
            assert refused.value.code == "engine_not_allowed"
            job = JobRequest(engine=NAME, data=data, params={"text_column": "text", "query": QUERY})
            with pytest.raises(PermissionDeniedError):
                await analytics.invoke(SUBMIT_JOB, job)


@pytest.mark.anyio
async def test_more_vector_bytes_than_a_run_may_search_is_a_413(
    tmp_path: Path, remote_embeddings: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiplatform.engines.analytics.methods import faiss_retrieval
    from aiplatform.errors import RequestTooLargeError

    monkeypatch.setattr(faiss_retrieval, "MAX_VECTOR_BYTES", 1024)
    async with _analytics(tmp_path, {"embeddings": remote_embeddings}) as analytics:
        with pytest.raises(RequestTooLargeError) as refused:
            await analytics.invoke(
                METHOD_OPERATIONS[NAME],
                _request([{"text": t} for t in TEXTS], text_column="text", query=QUERY),
            )
    assert refused.value.code == "dataset_too_large"
