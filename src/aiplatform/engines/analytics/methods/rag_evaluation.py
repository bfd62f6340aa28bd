"""rag_evaluation: how well a RAG collection finds what labelled queries need, and, asked for,
whether answers drawn from what it finds are faithful to it.

The table holds one query per row and the ids of the documents (or chunks) relevant to it. In
the server process (:func:`prepare`) every query is searched through the RAG engine's protocol,
a few at a time; the collection is one the RAG engine has, or one made for the run from inline
``documents`` and deleted when the searches are done. With ``faithfulness``, an LLM (through
its protocol) answers each query from the chunks found, then grades whether its answer is
supported by them, as a strict JSON verdict; a verdict that is not exactly one of the two
allowed is counted as unparseable, never guessed.

The worker computes the metrics from the ranked ids, with binary relevance: precision@k
(relevant among the first k, over k), recall@k (over the relevant ones), the reciprocal rank
of the first relevant one within k, and nDCG@k (gains 1, discounts log2(rank + 1), over the
ideal ordering). Matched by document, the ranking is the documents in the order of their best
chunk (a document found twice counts once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from aiplatform.api.ids import Id
from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import (
    Method,
    MethodExample,
    Outcome,
    Preparation,
    Records,
    Run,
)
from aiplatform.engines.analytics.preparation import map_bounded
from aiplatform.errors import AIPlatformError, InternalError, InvalidRequestError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from aiplatform.api.rag import SearchHit
    from aiplatform.engines.base import Engine

__all__ = [
    "METHOD",
    "EvalDocument",
    "QueryEvaluation",
    "RagEvaluationParams",
    "RagEvaluationResult",
]

#: Searches (and LLM calls) in flight at once.
CONCURRENCY = 4
#: The most queries one run searches.
MAX_QUERIES = 1_000
#: The most queries one run grades for faithfulness (two LLM calls each).
MAX_GRADED = 200
#: The most inline documents one run indexes.
MAX_DOCUMENTS = 2_000
#: Documents per add request to the RAG engine.
_ADD_BATCH = 256
#: Seconds the run's own collection may take to delete, past the run's end or cancellation.
_DELETE_DEADLINE_S = 30.0
_log = logging.getLogger(__name__)
#: Matched by document, a search asks for this many chunks per document wanted (a document
#: often has several chunks among the best), at most the RAG engine's 200.
_CHUNKS_PER_DOCUMENT = 4
_MAX_TOP_K = 200
#: The context an answer is drawn from: each chunk, and all of them, cut to these lengths.
_CHUNK_CHARS = 1_500
_CONTEXT_CHARS = 8_000

Verdict = Literal["supported", "unsupported", "unparseable"]
_VERDICTS = ("supported", "unsupported")
_VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": list(_VERDICTS)}},
    "required": ["verdict"],
    "additionalProperties": False,
}
_ANSWER_PROMPT = (
    "Answer the question using only the numbered context passages. If they do not contain "
    "the answer, say that they do not."
)
_GRADE_PROMPT = (
    "You check answers against their sources. Given context passages, a question and an "
    "answer, decide whether every claim of the answer is supported by the passages. Reply "
    'with JSON only: {"verdict": "supported"} or {"verdict": "unsupported"}.'
)


class EvalDocument(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The document's id: what the relevant column names.
    id: Id
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=1_000_000)]
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class RagEvaluationParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column with the query texts.
    query_column: str = "query"
    #: Column with the ids relevant to each query: a list, or text separated by
    #: ``separator`` ("doc-1;doc-7").
    relevant_column: str = "relevant"
    #: The RAG collection to evaluate (id or name). Either this or ``documents``.
    collection: Id | None = None
    #: Documents to evaluate on instead: indexed into a collection made for the run (with
    #: the RAG engine's default embeddings model and chunking) and deleted after it.
    documents: (
        Annotated[list[EvalDocument], msgspec.Meta(min_length=1, max_length=MAX_DOCUMENTS)] | None
    ) = None
    #: The cut-off: metrics are over the first k documents (or chunks) found.
    k: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5
    #: What the labels name: "document" ids or "chunk" ids (chunk ids only of a
    #: ``collection``: a run's own collection's chunks are new each time).
    match: Literal["document", "chunk"] = "document"
    #: The search: "vector" (cosine), "lexical" (BM25) or "hybrid" (both, fused).
    mode: Literal["vector", "hybrid", "lexical"] = "hybrid"
    #: What separates ids in a text label.
    separator: Annotated[str, msgspec.Meta(min_length=1, max_length=8)] = ";"
    #: Also grade the faithfulness of answers drawn from the chunks found (needs ``model``
    #: and an LLM engine).
    faithfulness: bool = False
    #: The LLM that answers and grades (as the LLM engine lists it).
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class QueryEvaluation(msgspec.Struct, kw_only=True):
    #: The query's row in the table (0-based).
    row: int
    query: str
    #: The ids labelled relevant.
    relevant: list[str]
    #: The ids found, best first: the first k documents (or chunks).
    ranked_ids: list[str]
    precision_at_k: float
    recall_at_k: float
    #: 1 / rank of the first relevant id within k; 0 when none is.
    reciprocal_rank: float
    ndcg_at_k: float
    #: Whether a relevant id is among the first k.
    hit: bool
    #: The LLM's answer from the chunks found (faithfulness only).
    answer: str | None = None
    #: "supported", "unsupported" or "unparseable" (faithfulness only).
    verdict: Verdict | None = None


class RagEvaluationResult(msgspec.Struct, kw_only=True):
    k: int
    match: str
    mode: str
    #: Queries evaluated (with a text and at least one relevant id).
    queries: int
    #: Rows left out: no query text or no relevant id.
    skipped: int
    #: Means over the queries evaluated.
    precision_at_k: float
    recall_at_k: float
    mrr: float
    ndcg_at_k: float
    #: Share of queries with a relevant id among the first k.
    hit_rate: float
    #: Supported answers over those graded supported or unsupported; None without
    #: faithfulness or when no verdict could be read.
    faithfulness: float | None
    #: Verdicts by kind (faithfulness only).
    supported: int | None
    unsupported: int | None
    unparseable: int | None
    per_query: list[QueryEvaluation]


# ----------------------------------------------------------------------------- checks


def _check_params(params: RagEvaluationParams) -> None:
    """What to search and how, before anything is searched (400s naming the param)."""
    if (params.collection is None) == (params.documents is None):
        raise InvalidRequestError(
            "Name the collection to evaluate, or give the documents to evaluate on: one of "
            "the two.",
            param="params.collection",
            code="missing_param" if params.collection is None else "ambiguous_source",
        )
    if params.documents is not None:
        if params.match == "chunk":
            raise InvalidRequestError(
                "Chunk ids can be labelled only in an existing collection; inline documents "
                "are chunked anew for each run. Label document ids (match='document').",
                param="params.match",
                code="unsupported_match",
            )
        seen: set[str] = set()
        for document in params.documents:
            if document.id in seen:
                raise InvalidRequestError(
                    f"Document id '{document.id}' is given twice.",
                    param="params.documents",
                    code="duplicate_document",
                )
            seen.add(document.id)
    if params.faithfulness and params.model is None:
        raise InvalidRequestError(
            "Grading faithfulness needs the LLM that answers and grades: set params.model.",
            param="params.model",
            code="missing_param",
        )


def _text(cell: Any) -> str | None:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    text = str(cell).strip()
    return text or None


def _labels(cell: Any, separator: str) -> list[str]:
    """The relevant ids of a cell: a list (or array) of ids, or text split by
    ``separator``; a number is an id too (12.0 is "12"). Repeats are dropped."""
    if cell is None:
        return []
    if isinstance(cell, str):
        items: Sequence[Any] = cell.split(separator)
    elif isinstance(cell, list | tuple) or hasattr(cell, "tolist"):
        items = cell.tolist() if hasattr(cell, "tolist") else cell
        if not isinstance(items, list | tuple):
            items = [items]
    else:
        items = [cell]
    labels = [_id_text(item) for item in items]
    return list(dict.fromkeys(label for label in labels if label))


def _id_text(item: Any) -> str:
    if isinstance(item, float):
        if math.isnan(item):
            return ""
        if item.is_integer():
            return str(int(item))
    return "" if item is None else str(item).strip()


def _usable(queries: Sequence[Any], labels: Sequence[Any], separator: str) -> list[str | None]:
    """Each row's query text when the row can be evaluated (a text and a label), else None."""
    return [
        text if text is not None and _labels(label, separator) else None
        for text, label in zip((_text(query) for query in queries), labels, strict=True)
    ]


# ----------------------------------------------------------------------------- prepare


async def prepare(params: RagEvaluationParams, preparation: Preparation) -> dict[str, Any]:
    """Search every labelled query (and answer and grade it) through the engines."""
    queries = await preparation.column(params.query_column, "query_column")
    labels = await preparation.column(params.relevant_column, "relevant_column")
    _check_params(params)
    usable = _usable(queries, labels, params.separator)
    rows = [row for row, text in enumerate(usable) if text is not None]
    _check_counts(len(rows), params)
    rag = preparation.engine("rag")
    llm = preparation.engine("llm") if params.faithfulness else None
    texts = [str(usable[row]) for row in rows]
    async with _collection(rag, params) as collection_id:
        found = await map_bounded(
            lambda text: _search(rag, collection_id, text, params), texts, CONCURRENCY
        )
    hits: list[dict[str, Any] | None] = [None] * len(usable)
    for row, found_hits in zip(rows, found, strict=True):
        hits[row] = {
            "documents": [hit.document_id for hit in found_hits],
            "chunks": [hit.chunk_id for hit in found_hits],
        }
    prepared: dict[str, Any] = {"hits": hits}
    if llm is not None and params.model is not None:
        model = params.model
        graded = await map_bounded(
            lambda pair: _answer_and_grade(
                llm, model, pair[0], pair[1], params.k, preparation.seed
            ),
            list(zip(texts, found, strict=True)),
            CONCURRENCY,
        )
        prepared["answers"] = _by_row(len(usable), rows, [answer for answer, _ in graded])
        prepared["verdicts"] = _by_row(len(usable), rows, [verdict for _, verdict in graded])
    return prepared


def _check_counts(count: int, params: RagEvaluationParams) -> None:
    if count > MAX_QUERIES:
        raise InvalidRequestError(
            f"The table has {count} labelled queries; one run evaluates at most {MAX_QUERIES}.",
            param="data",
            code="too_many_queries",
        )
    if params.faithfulness and count > MAX_GRADED:
        raise InvalidRequestError(
            f"Grading faithfulness asks the LLM twice per query; one run grades at most "
            f"{MAX_GRADED} queries, and the table has {count}.",
            param="params.faithfulness",
            code="too_many_queries",
        )


def _by_row(count: int, rows: list[int], values: list[str]) -> list[str | None]:
    placed: list[str | None] = [None] * count
    for row, value in zip(rows, values, strict=True):
        placed[row] = value
    return placed


@contextlib.asynccontextmanager
async def _collection(rag: Engine, params: RagEvaluationParams) -> AsyncIterator[str]:
    """The collection searched: the one named (404 naming params.collection when the RAG
    engine has none of that name), or one made of ``documents`` for the run, deleted
    afterwards whatever happens."""

    from aiplatform.api.rag import CollectionCreateRequest, CollectionRef
    from aiplatform.engines.rag.operations import (
        CREATE_COLLECTION,
        GET_COLLECTION,
    )

    if params.collection is not None:
        try:
            found = await rag.invoke(GET_COLLECTION, CollectionRef(collection_id=params.collection))
        except NotFoundError as exc:
            raise NotFoundError(exc.message, param="params.collection", code=exc.code) from None
        yield found.id
        return
    name = f"rag-evaluation-{uuid.uuid4().hex}"
    try:
        created = await rag.invoke(
            CREATE_COLLECTION,
            CollectionCreateRequest(name=name, metadata={"made_by": "rag_evaluation"}),
        )
        await _add_documents(rag, created.id, params.documents or [])
        yield created.id
    finally:
        # by name: a create interrupted by a cancellation may still have made it
        await _delete_quietly(rag, name)


async def _delete_quietly(rag: Engine, name: str) -> None:
    """Delete the run's own collection (looked up by name), shielded from the run's
    cancellation but bounded; a failure is logged, never put in place of the run's answer."""
    import anyio

    from aiplatform.api.rag import CollectionRef
    from aiplatform.engines.rag.operations import DELETE_COLLECTION

    with anyio.move_on_after(_DELETE_DEADLINE_S, shield=True):
        try:
            await rag.invoke(DELETE_COLLECTION, CollectionRef(collection_id=name))
        except NotFoundError:
            pass  # the create never happened
        except AIPlatformError as exc:
            _log.warning("could not delete the evaluation collection %s: %s", name, exc.message)


async def _add_documents(rag: Engine, collection_id: str, documents: list[EvalDocument]) -> None:
    from aiplatform.api.rag import DocumentAddRequest, DocumentInput
    from aiplatform.engines.rag.operations import ADD_DOCUMENTS

    for start in range(0, len(documents), _ADD_BATCH):
        batch = [
            DocumentInput(id=document.id, text=document.text, metadata=document.metadata)
            for document in documents[start : start + _ADD_BATCH]
        ]
        await rag.invoke(
            ADD_DOCUMENTS, DocumentAddRequest(collection_id=collection_id, documents=batch)
        )


async def _search(
    rag: Engine, collection_id: str, query: str, params: RagEvaluationParams
) -> list[SearchHit]:
    from aiplatform.api.rag import SearchRequest
    from aiplatform.engines.rag.operations import SEARCH

    wanted = params.k if params.match == "chunk" else params.k * _CHUNKS_PER_DOCUMENT
    request = SearchRequest(
        collection_id=collection_id,
        query=query,
        top_k=min(wanted, _MAX_TOP_K),
        mode=params.mode,
    )
    result = await rag.invoke(SEARCH, request)
    return list(result.data)


async def _answer_and_grade(  # noqa: PLR0917 (one call site, read as a sentence)
    llm: Engine, model: str, query: str, hits: list[SearchHit], k: int, seed: int
) -> tuple[str, str]:
    """The LLM's answer from the first k chunks, and its verdict on it, as it wrote it."""
    from aiplatform.api.chat import (
        ChatCompletionRequest,
        ChatMessage,
        JsonSchemaFormat,
        ResponseFormat,
    )
    from aiplatform.engines.llm.operations import CHAT

    context = _context(hits[:k])
    asked = ChatCompletionRequest(
        model=model,
        messages=[
            ChatMessage(role="system", content=_ANSWER_PROMPT),
            ChatMessage(role="user", content=f"{context}\n\nQuestion: {query}"),
        ],
        temperature=0.0,
        seed=seed,
        max_tokens=256,
    )
    answered = await llm.invoke(CHAT, asked)
    answer = (answered.choices[0].message.content or "") if answered.choices else ""
    verdict_format = ResponseFormat(
        type="json_schema",
        json_schema=JsonSchemaFormat(name="verdict", json_schema=_VERDICT_SCHEMA, strict=True),
    )
    graded = await llm.invoke(
        CHAT,
        ChatCompletionRequest(
            model=model,
            messages=[
                ChatMessage(role="system", content=_GRADE_PROMPT),
                ChatMessage(
                    role="user", content=f"{context}\n\nQuestion: {query}\n\nAnswer: {answer}"
                ),
            ],
            temperature=0.0,
            seed=seed,
            max_tokens=32,
            response_format=verdict_format,
        ),
    )
    verdict = (graded.choices[0].message.content or "") if graded.choices else ""
    return answer, verdict


def _context(hits: list[SearchHit]) -> str:
    passages = [f"[{index}] {hit.text[:_CHUNK_CHARS]}" for index, hit in enumerate(hits, 1)]
    return ("Context:\n" + "\n".join(passages))[:_CONTEXT_CHARS]


# ----------------------------------------------------------------------------- compute


@dataclass(frozen=True, slots=True)
class _Scores:
    precision: float
    recall: float
    reciprocal_rank: float
    ndcg: float


def scores(ranked: Sequence[str], relevant: set[str], k: int) -> _Scores:
    """Binary-relevance metrics of ``ranked`` (best first) cut at ``k``."""
    top = list(ranked)[:k]
    gains = [1.0 if item in relevant else 0.0 for item in top]
    found = sum(gains)
    first = next((rank for rank, gain in enumerate(gains, 1) if gain), None)
    dcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, 1))
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return _Scores(
        precision=found / k,
        recall=found / len(relevant),
        reciprocal_rank=1 / first if first is not None else 0.0,
        ndcg=dcg / ideal,
    )


def compute(
    frame: pd.DataFrame, params: RagEvaluationParams, run: Run
) -> Outcome[RagEvaluationResult]:
    queries = columns.column(frame, params.query_column, "query_column")
    labels = columns.column(frame, params.relevant_column, "relevant_column")
    _check_params(params)
    prepared = run.prepared
    if prepared is None:
        raise InternalError(
            "The rag_evaluation computation runs after its prepare step, which searches the "
            "queries; it was called without it.",
            code="not_prepared",
        )
    usable = _usable(queries.tolist(), labels.tolist(), params.separator)
    if all(text is None for text in usable):
        raise InvalidRequestError(
            f"No row has both a query in '{params.query_column}' and a relevant id in "
            f"'{params.relevant_column}'.",
            param="params.relevant_column",
            code="no_labelled_queries",
        )
    if params.model is not None and not params.faithfulness:
        run.warn("params.model is used only to grade faithfulness (faithfulness: true).")
    skipped = sum(text is None for text in usable)
    if skipped:
        run.warn(f"{skipped} rows without a query text or a relevant id are left out.")
    run.progress(0.2, "scoring the rankings")
    evaluations = _evaluations(usable, labels.tolist(), prepared, params, run)
    _warn_unknown_labels(evaluations, params, run)
    result = _result(evaluations, params, skipped)
    run.progress(0.9, "charting")
    return Outcome(result=result, summary=_summary(result, params), charts=_charts(result))


def _evaluations(
    usable: list[str | None],
    labels: list[Any],
    prepared: dict[str, Any],
    params: RagEvaluationParams,
    run: Run,
) -> list[QueryEvaluation]:
    hits = prepared.get("hits")
    if not isinstance(hits, list) or len(hits) != len(usable):
        raise InternalError("The prepared searches do not match the table.", code="not_prepared")
    answers = prepared.get("answers") or [None] * len(usable)
    verdicts = prepared.get("verdicts") or [None] * len(usable)
    evaluations: list[QueryEvaluation] = []
    for row, text in enumerate(usable):
        if text is None:
            continue
        if hits[row] is None:
            raise InternalError(f"Query {row} was not searched.", code="not_prepared")
        ranked = _ranked(hits[row], params)
        relevant = _labels(labels[row], params.separator)
        score = scores(ranked, set(relevant), params.k)
        evaluations.append(
            QueryEvaluation(
                row=row,
                query=text,
                relevant=relevant,
                ranked_ids=ranked,
                precision_at_k=score.precision,
                recall_at_k=score.recall,
                reciprocal_rank=score.reciprocal_rank,
                ndcg_at_k=score.ndcg,
                hit=score.reciprocal_rank > 0,
                answer=answers[row] if params.faithfulness else None,
                verdict=_verdict(verdicts[row]) if params.faithfulness else None,
            )
        )
        run.progress(0.2 + 0.6 * (row + 1) / len(usable), "scoring the rankings")
    return evaluations


def _ranked(hits: dict[str, Any], params: RagEvaluationParams) -> list[str]:
    """The first k ids: chunks as found, or documents in the order of their best chunk."""
    if params.match == "chunk":
        return [str(chunk) for chunk in hits["chunks"]][: params.k]
    return list(dict.fromkeys(str(document) for document in hits["documents"]))[: params.k]


def _verdict(text: str | None) -> Verdict:
    """The grade as the LLM wrote it: exactly ``{"verdict": "supported"}`` or
    ``{"verdict": "unsupported"}`` (whitespace aside); anything else is unparseable."""
    try:
        value = json.loads(text or "")
    except ValueError:
        return "unparseable"
    if isinstance(value, dict) and list(value) == ["verdict"]:
        verdict = value["verdict"]
        if verdict == "supported":
            return "supported"
        if verdict == "unsupported":
            return "unsupported"
    return "unparseable"


def _warn_unknown_labels(
    evaluations: list[QueryEvaluation], params: RagEvaluationParams, run: Run
) -> None:
    if params.documents is None:
        return
    known = {document.id for document in params.documents}
    unknown = sorted({label for item in evaluations for label in item.relevant} - known)
    if unknown:
        shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        run.warn(f"{len(unknown)} relevant ids name no given document: {shown}.")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _result(
    evaluations: list[QueryEvaluation], params: RagEvaluationParams, skipped: int
) -> RagEvaluationResult:
    verdicts = [item.verdict for item in evaluations]
    counts = {kind: verdicts.count(kind) for kind in ("supported", "unsupported", "unparseable")}
    read = counts["supported"] + counts["unsupported"]
    graded = params.faithfulness
    return RagEvaluationResult(
        k=params.k,
        match=params.match,
        mode=params.mode,
        queries=len(evaluations),
        skipped=skipped,
        precision_at_k=_mean([item.precision_at_k for item in evaluations]),
        recall_at_k=_mean([item.recall_at_k for item in evaluations]),
        mrr=_mean([item.reciprocal_rank for item in evaluations]),
        ndcg_at_k=_mean([item.ndcg_at_k for item in evaluations]),
        hit_rate=_mean([1.0 if item.hit else 0.0 for item in evaluations]),
        faithfulness=counts["supported"] / read if graded and read else None,
        supported=counts["supported"] if graded else None,
        unsupported=counts["unsupported"] if graded else None,
        unparseable=counts["unparseable"] if graded else None,
        per_query=evaluations,
    )


def _summary(result: RagEvaluationResult, params: RagEvaluationParams) -> str:
    source = (
        f"collection '{params.collection}'"
        if params.collection is not None
        else f"{len(params.documents or [])} given documents"
    )
    k = result.k
    text = (
        f"{result.queries} labelled queries against {source} ({params.mode} search, the "
        f"first {k} {params.match}s): precision@{k} {result.precision_at_k:.3f}, "
        f"recall@{k} {result.recall_at_k:.3f}, MRR {result.mrr:.3f}, nDCG@{k} "
        f"{result.ndcg_at_k:.3f}; {round(result.hit_rate * result.queries)} of "
        f"{result.queries} found a relevant {params.match} among the first {k}."
    )
    if result.skipped:
        text += f" {result.skipped} rows without a query or a label were left out."
    if params.faithfulness:
        rate = "n/a" if result.faithfulness is None else f"{result.faithfulness:.3f}"
        text += (
            f" Faithfulness ({params.model}): {result.supported} answers supported, "
            f"{result.unsupported} unsupported, {result.unparseable} unparseable verdicts "
            f"(rate {rate})."
        )
    return text


def _charts(result: RagEvaluationResult) -> list[dict[str, Any]]:
    k = result.k
    means = [
        {"metric": f"precision@{k}", "value": result.precision_at_k},
        {"metric": f"recall@{k}", "value": result.recall_at_k},
        {"metric": "MRR", "value": result.mrr},
        {"metric": f"nDCG@{k}", "value": result.ndcg_at_k},
        {"metric": "hit rate", "value": result.hit_rate},
    ]
    if result.faithfulness is not None:
        means.append({"metric": "faithfulness", "value": result.faithfulness})
    overall = charts.bar(
        means,
        charts.field("metric", "nominal", title=None, sort=None),
        charts.field("value", "quantitative", title="mean over queries", scale={"domain": [0, 1]}),
        title="retrieval metrics",
    )
    per_query = charts.bar(
        [
            {"query": f"{item.row}: {item.query[:40]}", "nDCG": item.ndcg_at_k}
            for item in result.per_query[:200]
        ],
        charts.field("nDCG", "quantitative", title=f"nDCG@{k}", scale={"domain": [0, 1]}),
        charts.field("query", "nominal", title=None, sort="-x"),
        title=f"nDCG@{k} per query",
    )
    return [overall, per_query]


# ----------------------------------------------------------------------------- the example

_EXAMPLE_DOCUMENTS = (
    ("releases", "Releases ship every Tuesday at noon after the release checklist is signed."),
    ("leave", "Staff take annual leave by asking their lead at least a week ahead."),
    ("expenses", "Travel expenses are refunded within ten days when receipts are attached."),
    ("security", "Laptops must use disk encryption and lock the screen after five minutes."),
    ("onboarding", "New staff get a laptop, a badge and a buddy on their first day."),
    ("oncall", "The on-call engineer answers pages within fifteen minutes, day and night."),
    ("office", "The office opens at eight and closes at seven; badges open the doors."),
    ("payroll", "Salaries are paid on the last working day of each month."),
)
_EXAMPLE_QUERIES = (
    ("When do releases ship?", "releases"),
    ("How do I ask for annual leave?", "leave"),
    ("When are travel expenses refunded?", "expenses"),
    ("What must a laptop use for security?", "security;onboarding"),
    ("What do new staff get on their first day?", "onboarding"),
    ("How fast does the on-call engineer answer pages?", "oncall"),
    ("When does the office open?", "office"),
    ("When are salaries paid?", "payroll"),
)


def _example_data() -> Records:
    return [{"query": query, "relevant": relevant} for query, relevant in _EXAMPLE_QUERIES]


METHOD: Method[RagEvaluationParams, RagEvaluationResult] = Method(
    name="rag_evaluation",
    summary="Retrieval quality of a RAG collection on labelled queries (precision@k, "
    "recall@k, MRR, nDCG@k) and, asked for, the faithfulness of LLM answers graded by an LLM.",
    params=RagEvaluationParams,
    result=RagEvaluationResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=RagEvaluationParams(
            query_column="query",
            relevant_column="relevant",
            documents=[EvalDocument(id=name, text=text) for name, text in _EXAMPLE_DOCUMENTS],
            k=3,
        ),
    ),
    min_rows=1,
    calls=("rag", "llm"),
    prepare=prepare,
    calls_for=lambda params: ("rag", "llm") if params.faithfulness else ("rag",),
)
