"""The rag_evaluation engine: its metrics equal precision@k, recall@k, MRR and nDCG@k computed
here by formula, on hand-made rankings and on what a fake-backend RAG engine's searches return
(over ASGI); inline documents are evaluated in a collection of the run's own, deleted after it;
faithfulness verdicts of an LLM are read strictly; without a RAG engine it is a 503."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import pytest

from aiplatform.api.analytics import request_type
from aiplatform.api.chat import AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionRequest
from aiplatform.api.rag import (
    CollectionCreateRequest,
    CollectionListRequest,
    DocumentAddRequest,
    DocumentInput,
    SearchMode,
    SearchRequest,
)
from aiplatform.engines.analytics.engine import LocalAnalyticsEngine
from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.methods.rag_evaluation import _labels
from aiplatform.engines.analytics.operations import METHOD_OPERATIONS
from aiplatform.engines.analytics.settings import AnalyticsSettings
from aiplatform.engines.base import Engine, Operation
from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.llm.engine import LocalLLMEngine
from aiplatform.engines.llm.settings import LLMModelSettings, LLMSettings
from aiplatform.engines.rag import operations as rag_ops
from aiplatform.engines.rag.engine import LocalRagEngine
from aiplatform.engines.rag.settings import RagSettings
from aiplatform.engines.wrapped import WrappedEngine
from aiplatform.errors import (
    EngineUnavailableError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
)
from aiplatform.testing import asgi_remote
from tests.analytics import assert_valid_charts, run_direct

NAME = "rag_evaluation"

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)


def _by_formula(ranked: list[str], relevant: set[str], k: int) -> tuple[float, ...]:
    """precision@k, recall@k, reciprocal rank and nDCG@k, written out."""
    top = ranked[:k]
    hits = [item in relevant for item in top]
    precision = sum(hits) / k
    recall = sum(hits) / len(relevant)
    rr = next((1 / (i + 1) for i, hit in enumerate(hits) if hit), 0.0)
    dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return precision, recall, rr, dcg / idcg


# ----------------------------------------------------------------------------- hand-made


DATA: Records = [
    {"q": "first", "rel": "a; b"},
    {"q": "second", "rel": "x"},
    {"q": "third", "rel": "z"},
    {"q": "no label", "rel": None},
    {"q": None, "rel": "a"},
    {"q": "fourth", "rel": "m;n;o;p"},
]
HITS: list[dict[str, Any] | None] = [
    {"documents": ["c", "a", "a", "d", "b"], "chunks": ["1", "2", "3", "4", "5"]},
    {"documents": ["x", "y"], "chunks": ["6", "7"]},
    {"documents": ["p", "q", "r", "z"], "chunks": ["8", "9", "10", "11"]},
    None,
    None,
    {"documents": ["n", "m", "q", "o"], "chunks": ["12", "13", "14", "15"]},
]
PARAMS: dict[str, Any] = {"query_column": "q", "relevant_column": "rel", "collection": "c1"}


def test_metrics_equal_the_formulas_on_hand_made_rankings() -> None:
    direct = run_direct(NAME, DATA, {**PARAMS, "k": 3}, prepared={"hits": HITS})
    result = direct.result
    ranked = {0: ["c", "a", "d"], 1: ["x", "y"], 2: ["p", "q", "r"], 5: ["n", "m", "q"]}
    relevant = {0: {"a", "b"}, 1: {"x"}, 2: {"z"}, 5: {"m", "n", "o", "p"}}
    assert [item.row for item in result.per_query] == [0, 1, 2, 5]
    for item in result.per_query:
        assert item.ranked_ids == ranked[item.row]
        assert set(item.relevant) == relevant[item.row]
        want = _by_formula(ranked[item.row], relevant[item.row], 3)
        got = (item.precision_at_k, item.recall_at_k, item.reciprocal_rank, item.ndcg_at_k)
        assert got == pytest.approx(want, rel=1e-12)
    # by hand: the first query's relevant "a" is second (rr 1/2), nDCG (1/log2 3)/(1 + 1/log2 3)
    first = result.per_query[0]
    assert first.reciprocal_rank == 0.5
    assert first.ndcg_at_k == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert (first.precision_at_k, first.recall_at_k) == pytest.approx((1 / 3, 1 / 2))
    assert result.per_query[2].hit is False
    assert result.mrr == pytest.approx((1 / 2 + 1 + 0 + 1) / 4)
    assert result.precision_at_k == pytest.approx((1 / 3 + 1 / 3 + 0 + 2 / 3) / 4)
    assert result.recall_at_k == pytest.approx((1 / 2 + 1 + 0 + 2 / 4) / 4)
    assert result.hit_rate == 0.75
    assert (result.queries, result.skipped) == (4, 2)
    assert result.faithfulness is None
    assert any("2 rows without a query" in warning for warning in direct.warnings)
    assert_valid_charts(direct.charts)
    fractions = [fraction for fraction, _ in direct.progress]
    assert fractions == sorted(fractions)


def test_chunk_ids_are_ranked_as_found() -> None:
    data: Records = [{"q": "first", "rel": "2;5"}, {"q": "second", "rel": 7}]
    hits = [HITS[0], HITS[1]]
    result = run_direct(
        NAME, data, {**PARAMS, "k": 4, "match": "chunk"}, prepared={"hits": hits}
    ).result
    assert [item.ranked_ids for item in result.per_query] == [["1", "2", "3", "4"], ["6", "7"]]
    assert result.per_query[0].recall_at_k == 0.5
    assert result.per_query[1].reciprocal_rank == 0.5


def test_verdicts_are_read_strictly_and_the_unreadable_counted() -> None:
    data: Records = [{"q": f"q{k}", "rel": "a"} for k in range(5)]
    hits = [{"documents": ["a"], "chunks": ["1"]}] * 5
    verdicts = [
        '{"verdict": "supported"}',
        ' {"verdict":"unsupported"}\n',
        "Supported.",
        '{"verdict": "supported", "why": "it says so"}',
        '{"verdict": "SUPPORTED"}',
    ]
    prepared = {"hits": hits, "answers": [f"answer {k}" for k in range(5)], "verdicts": verdicts}
    params = {**PARAMS, "faithfulness": True, "model": "m"}
    result = run_direct(NAME, data, params, prepared=prepared).result
    assert [item.verdict for item in result.per_query] == [
        "supported",
        "unsupported",
        "unparseable",
        "unparseable",
        "unparseable",
    ]
    assert (result.supported, result.unsupported, result.unparseable) == (1, 1, 3)
    assert result.faithfulness == 0.5
    assert result.per_query[1].answer == "answer 1"


def test_labels_come_as_lists_arrays_numbers_or_separated_text() -> None:
    assert _labels("a; b;;a", ";") == ["a", "b"]
    assert _labels(["a", "b"], ";") == ["a", "b"]
    assert _labels(np.array(["x", "y"]), ";") == ["x", "y"]
    assert _labels(12.0, ";") == ["12"]
    assert _labels(float("nan"), ";") == []
    assert _labels("a|b", "|") == ["a", "b"]


def test_without_its_prepare_step_the_computation_is_an_internal_error() -> None:
    with pytest.raises(InternalError) as failed:
        run_direct(NAME, DATA, PARAMS)
    assert failed.value.code == "not_prepared"


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"collection": None}, "missing_param", "params.collection"),
        ({"documents": [{"id": "a", "text": "t"}]}, "ambiguous_source", "params.collection"),
        ({"faithfulness": True}, "missing_param", "params.model"),
        (
            {"collection": None, "documents": [{"id": "a", "text": "t"}], "match": "chunk"},
            "unsupported_match",
            "params.match",
        ),
        (
            {"collection": None, "documents": [{"id": "a", "text": "t"}, {"id": "a", "text": "u"}]},
            "duplicate_document",
            "params.documents",
        ),
        ({"relevant_column": "nope"}, "unknown_column", "params.relevant_column"),
    ],
)
def test_an_impossible_request_is_a_400_naming_the_param(
    params: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        run_direct(NAME, DATA, {**PARAMS, **params}, prepared={"hits": HITS})
    assert (refused.value.code, refused.value.param) == (code, param)


def test_a_table_without_a_labelled_query_is_a_400() -> None:
    data: Records = [{"q": "first", "rel": None}, {"q": None, "rel": "a"}]
    with pytest.raises(InvalidRequestError) as refused:
        run_direct(NAME, data, PARAMS, prepared={"hits": [None, None]})
    assert (refused.value.code, refused.value.param) == (
        "no_labelled_queries",
        "params.relevant_column",
    )


# ----------------------------------------------------------------------------- through engines

HANDBOOK = {
    "releases": "Releases ship every Tuesday at noon after the checklist is signed.",
    "leave": "Staff take annual leave by asking their lead a week ahead.",
    "expenses": "Travel expenses are refunded within ten days with receipts attached.",
    "security": "Laptops use disk encryption and lock the screen after five minutes.",
    "onboarding": "New staff get a laptop, a badge and a buddy on the first day.",
    "oncall": "The on-call engineer answers pages within fifteen minutes.",
    "office": "The office opens at eight and closes at seven.",
    "payroll": "Salaries are paid on the last working day of each month.",
    "kitchen": "The kitchen is cleaned every evening; label food in the fridge.",
    "parking": "Parking spaces are shared; book one a day ahead in the app.",
}
QUERIES: Records = [
    {"query": "When do releases ship?", "relevant": "releases"},
    {"query": "How is annual leave asked for?", "relevant": "leave"},
    {"query": "When are expenses refunded?", "relevant": "expenses;payroll"},
    {"query": "What does a laptop need?", "relevant": "security;onboarding"},
    {"query": "Who answers pages at night?", "relevant": "oncall"},
    {"query": "When does the office open?", "relevant": "office"},
    {"query": "Where do I put food?", "relevant": "kitchen"},
    {"query": "How do I book parking?", "relevant": "parking;office"},
    {"query": "What does the new badge open?", "relevant": "onboarding;office"},
]


@pytest.fixture
async def fakes(tmp_path: Path) -> AsyncIterator[tuple[Engine, Engine, LocalLLMEngine]]:
    """A fake-backend RAG engine in-process, its remote adapter (over ASGI), and a fake LLM."""
    embeddings = LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake"))
    rag = LocalRagEngine(RagSettings(data_dir=str(tmp_path / "rag")), embeddings=embeddings)
    llm = LocalLLMEngine(LLMSettings(models=[LLMModelSettings(name="judge", backend="fake")]))
    async with embeddings, rag, llm, asgi_remote(rag, RagSettings()) as remote:
        yield rag, remote, llm


def _analytics(tmp_path: Path, engines: dict[str, Engine]) -> LocalAnalyticsEngine:
    settings = AnalyticsSettings(data_dir=str(tmp_path / "analytics"), max_concurrency=1)
    return LocalAnalyticsEngine(settings, engines=engines)


def _request(data: Records, **params: Any) -> Any:
    method = METHODS[NAME]
    return request_type(method)(data=data, params=msgspec.convert(params, method.params))


async def _handbook(rag: Engine, name: str = "handbook") -> None:
    created = await rag.invoke(rag_ops.CREATE_COLLECTION, CollectionCreateRequest(name=name))
    documents = [DocumentInput(id=key, text=text) for key, text in HANDBOOK.items()]
    await rag.invoke(
        rag_ops.ADD_DOCUMENTS, DocumentAddRequest(collection_id=created.id, documents=documents)
    )


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["hybrid", "vector"])
async def test_metrics_equal_the_formulas_on_what_the_rag_search_returns(
    tmp_path: Path, fakes: tuple[Engine, Engine, LocalLLMEngine], mode: SearchMode
) -> None:
    rag, remote, _ = fakes
    await _handbook(rag)
    k = 3
    async with _analytics(tmp_path, {"rag": remote}) as analytics:
        response = await analytics.invoke(
            METHOD_OPERATIONS[NAME], _request(QUERIES, collection="handbook", k=k, mode=mode)
        )
    result = response.result
    assert result.queries == len(QUERIES)
    rows: list[tuple[float, ...]] = []
    for item, labelled in zip(result.per_query, QUERIES, strict=True):
        found = await rag.invoke(
            rag_ops.SEARCH,
            SearchRequest(
                collection_id="handbook", query=str(labelled["query"]), top_k=4 * k, mode=mode
            ),
        )
        ranked = list(dict.fromkeys(hit.document_id for hit in found.data))[:k]
        relevant = set(str(labelled["relevant"]).split(";"))
        assert item.ranked_ids == ranked
        want = _by_formula(ranked, relevant, k)
        rows.append(want)
        got = (item.precision_at_k, item.recall_at_k, item.reciprocal_rank, item.ndcg_at_k)
        assert got == pytest.approx(want, rel=1e-12)
    means = [sum(column) / len(rows) for column in zip(*rows, strict=True)]
    assert [result.precision_at_k, result.recall_at_k, result.mrr, result.ndcg_at_k] == (
        pytest.approx(means, rel=1e-12)
    )
    # the planted answer: a query sharing its words with one document finds it first
    assert result.per_query[0].ranked_ids[0] == "releases"
    assert result.mrr > 0.5
    assert_valid_charts(response.charts)


@pytest.mark.anyio
async def test_inline_documents_answer_as_the_same_collection_does_and_are_deleted(
    tmp_path: Path, fakes: tuple[Engine, Engine, LocalLLMEngine]
) -> None:
    rag, remote, _ = fakes
    await _handbook(rag)
    documents = [{"id": key, "text": text} for key, text in HANDBOOK.items()]
    async with _analytics(tmp_path, {"rag": remote}) as analytics:
        inline = await analytics.invoke(
            METHOD_OPERATIONS[NAME], _request(QUERIES, documents=documents, k=2)
        )
        named = await analytics.invoke(
            METHOD_OPERATIONS[NAME], _request(QUERIES, collection="handbook", k=2)
        )
    assert inline.result.per_query == named.result.per_query
    assert inline.result.mrr == named.result.mrr
    listed = await rag.invoke(rag_ops.LIST_COLLECTIONS, CollectionListRequest())
    assert [collection.name for collection in listed.data] == ["handbook"]


@pytest.mark.anyio
async def test_the_example_answers_through_the_engines(
    tmp_path: Path, fakes: tuple[Engine, Engine, LocalLLMEngine]
) -> None:
    _, remote, _ = fakes
    method = METHODS[NAME]
    request = request_type(method)(data=method.example.data, params=method.example.params)
    async with _analytics(tmp_path, {"rag": remote}) as analytics:
        first = await analytics.invoke(METHOD_OPERATIONS[NAME], request)
        again = await analytics.invoke(METHOD_OPERATIONS[NAME], request)
    assert first == again
    assert first.result.queries == len(method.example.data)
    assert first.result.mrr > 0.5
    assert_valid_charts(first.charts)


class Unreadable(WrappedEngine):
    """The fake LLM, except that it grades in words rather than the JSON asked for."""

    async def invoke(self, op: Operation[Req, Resp, Any], request: Req) -> Resp:
        answer = await super().invoke(op, request)
        if isinstance(request, ChatCompletionRequest) and request.response_format is not None:
            assert isinstance(answer, ChatCompletion)
            replaced = ChatChoice(
                index=0, message=AssistantMessage(content="Supported."), finish_reason="stop"
            )
            return msgspec.structs.replace(answer, choices=[replaced])
        return answer


@pytest.mark.anyio
@pytest.mark.parametrize("unreadable", [False, True])
async def test_faithfulness_is_graded_by_the_llm(
    tmp_path: Path, fakes: tuple[Engine, Engine, LocalLLMEngine], unreadable: bool
) -> None:
    rag, remote, llm = fakes
    await _handbook(rag)
    params = {"collection": "handbook", "k": 2, "faithfulness": True, "model": "judge"}
    async with contextlib.AsyncExitStack() as stack:
        # the wrapper passes through to the fixture's engine, already started
        judge: Engine = (
            Unreadable(llm)
            if unreadable
            else await stack.enter_async_context(asgi_remote(llm, LLMSettings()))
        )
        analytics = await stack.enter_async_context(
            _analytics(tmp_path, {"rag": remote, "llm": judge})
        )
        response = await analytics.invoke(METHOD_OPERATIONS[NAME], _request(QUERIES[:4], **params))
    result = response.result
    assert all(item.answer for item in result.per_query)
    if unreadable:
        assert (result.supported, result.unsupported, result.unparseable) == (0, 0, 4)
        assert result.faithfulness is None
    else:
        # the fake LLM answers JSON mode with the schema's first allowed value
        assert (result.supported, result.unsupported, result.unparseable) == (4, 0, 0)
        assert result.faithfulness == 1.0
    assert "unparseable" in response.summary


@pytest.mark.anyio
async def test_a_collection_the_rag_engine_lacks_is_a_404_naming_it(
    tmp_path: Path, fakes: tuple[Engine, Engine, LocalLLMEngine]
) -> None:
    _, remote, _ = fakes
    async with _analytics(tmp_path, {"rag": remote}) as analytics:
        with pytest.raises(NotFoundError) as missing:
            await analytics.invoke(METHOD_OPERATIONS[NAME], _request(QUERIES, collection="nope"))
    assert missing.value.param == "params.collection"


@pytest.mark.anyio
async def test_without_a_rag_engine_it_is_a_503(tmp_path: Path) -> None:
    async with _analytics(tmp_path, {}) as analytics:
        with pytest.raises(EngineUnavailableError) as refused:
            await analytics.invoke(METHOD_OPERATIONS[NAME], _request(QUERIES, collection="c"))
    assert (refused.value.status_code, refused.value.code) == (503, "engine_unavailable")


@pytest.mark.anyio
async def test_a_graded_job_without_an_llm_is_refused_when_submitted(
    tmp_path: Path, fakes: tuple[Engine, Engine, LocalLLMEngine]
) -> None:
    """The job would otherwise wait for an engine this server does not have; without
    grading, no LLM is needed and the job is taken."""
    from aiplatform.api.analytics import JobRequest
    from aiplatform.engines.analytics.operations import SUBMIT_JOB

    _, remote, _ = fakes
    params = {"collection": "c", "query_column": "query", "relevant_column": "relevant"}
    async with _analytics(tmp_path, {"rag": remote}) as analytics:
        graded = {**params, "faithfulness": True, "model": "fake-llm"}
        with pytest.raises(EngineUnavailableError) as refused:
            await analytics.invoke(SUBMIT_JOB, JobRequest(engine=NAME, data=QUERIES, params=graded))
        assert "llm" in refused.value.message
        taken = await analytics.invoke(
            SUBMIT_JOB, JobRequest(engine=NAME, data=QUERIES, params=params)
        )
        assert taken.status in ("queued", "running", "succeeded", "failed")


@pytest.mark.anyio
async def test_the_runs_own_collection_is_deleted_even_when_a_run_fails(
    tmp_path: Path,
    fakes: tuple[Engine, Engine, LocalLLMEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiplatform.api.rag import CollectionListRequest
    from aiplatform.engines.analytics.methods import rag_evaluation
    from aiplatform.engines.rag.operations import LIST_COLLECTIONS
    from aiplatform.errors import BadGatewayError

    async def failing_search(*args: Any, **kwargs: Any) -> Any:
        raise BadGatewayError("the RAG engine failed mid-run")

    monkeypatch.setattr(rag_evaluation, "_search", failing_search)
    _, remote, _ = fakes
    documents = [{"id": key, "text": text} for key, text in HANDBOOK.items()]
    async with _analytics(tmp_path, {"rag": remote}) as analytics:
        with pytest.raises(BadGatewayError):  # after the documents were indexed
            await analytics.invoke(METHOD_OPERATIONS[NAME], _request(QUERIES, documents=documents))
        listed = await remote.invoke(LIST_COLLECTIONS, CollectionListRequest())
    assert not [c for c in listed.data if c.name.startswith("rag-evaluation-")]
