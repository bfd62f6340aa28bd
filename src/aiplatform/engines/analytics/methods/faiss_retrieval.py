"""faiss_retrieval: the rows of a table nearest in meaning to a query, or to one of its rows.

The text column is embedded by the embeddings engine, through its protocol (the server's own,
or a remote one), in the server process before the computation (:func:`prepare`): batches of
:data:`EMBED_BATCH` texts, a few at a time, as little-endian float32. The worker builds an
exact FAISS index over the vectors, L2-normalised, so that the inner product it ranks by is
the cosine similarity, and searches it with the query's vector and/or the chosen row's.
Rows without a text (missing or blank) are not indexed; a warning says how many.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aiplatform.engines.analytics import charts, columns
from aiplatform.engines.analytics.method import (
    Cell,
    Method,
    MethodExample,
    Outcome,
    Preparation,
    Records,
    Run,
)
from aiplatform.engines.analytics.preparation import map_bounded
from aiplatform.errors import InternalError, InvalidRequestError, RequestTooLargeError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from aiplatform.engines.base import Engine

__all__ = [
    "METHOD",
    "FaissRetrievalParams",
    "FaissRetrievalResult",
    "Match",
]

#: Texts per embeddings request.
EMBED_BATCH = 64
#: Embeddings requests in flight at once.
EMBED_CONCURRENCY = 4
#: The most texts one run embeds (their vectors travel to the worker).
MAX_TEXTS = 20_000
#: The most bytes of vectors one run searches (texts x dimensions x 4).
MAX_VECTOR_BYTES = 128 * 2**20


class FaissRetrievalParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Column with the texts to search.
    text_column: str
    #: Text whose nearest rows are wanted.
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)] | None = None
    #: Position (0-based) of a row whose nearest other rows are wanted.
    row: Annotated[int, msgspec.Meta(ge=0)] | None = None
    #: Rows returned per search.
    k: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    #: Embeddings model (as the embeddings engine lists it); absent: its default.
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    #: Columns whose values each match carries; absent: every column.
    columns: Annotated[list[str], msgspec.Meta(min_length=1, max_length=1000)] | None = None


class Match(msgspec.Struct, kw_only=True):
    #: The row's position in the table (0-based).
    row: int
    #: Cosine similarity to the query (or the chosen row): 1 is the same direction.
    score: float
    #: The row's text.
    text: str
    #: The row's values of ``columns``.
    values: dict[str, Cell]


class FaissRetrievalResult(msgspec.Struct, kw_only=True):
    #: The embeddings model that embedded the texts.
    model: str
    #: Length of its vectors.
    dimension: int
    #: Rows indexed (those with a text).
    indexed: int
    #: Rows left out for a missing or blank text.
    skipped: int
    #: The rows nearest to ``query``, nearest first; None without a query.
    query_matches: list[Match] | None
    #: The rows nearest to row ``row`` (itself left out), nearest first; None without one.
    row_matches: list[Match] | None


# ----------------------------------------------------------------------------- prepare


async def prepare(params: FaissRetrievalParams, preparation: Preparation) -> dict[str, Any]:
    """Embed the column's texts and the query (server process): what compute indexes."""
    cells = await preparation.column(params.text_column, "text_column")
    for name in params.columns or ():
        await preparation.column(name, "columns")
    texts = [_text(cell) for cell in cells]
    rows = [index for index, text in enumerate(texts) if text is not None]
    _check_request(params, texts)
    if len(rows) > MAX_TEXTS:
        raise InvalidRequestError(
            f"Column '{params.text_column}' has {len(rows)} texts; this engine embeds at most "
            f"{MAX_TEXTS} per run.",
            param="data",
            code="too_many_texts",
        )
    engine = preparation.engine("embeddings")
    present = [text for text in texts if text is not None]
    batches = [
        present[start : start + EMBED_BATCH] for start in range(0, len(present), EMBED_BATCH)
    ]
    embedded = await map_bounded(
        lambda batch: _embed(engine, batch, params.model), batches, EMBED_CONCURRENCY
    )
    query = None
    if params.query is not None:
        query = (await _embed(engine, [params.query], params.model))[0]
    model, dimension = embedded[0][1], embedded[0][2]
    if any(size != dimension for _, _, size in embedded) or (
        query is not None and len(query) != 4 * dimension
    ):
        raise InternalError("The embeddings engine answered vectors of unequal length.")
    if len(present) * dimension * 4 > MAX_VECTOR_BYTES:
        raise RequestTooLargeError(
            f"{len(present)} texts of {dimension} dimensions make "
            f"{len(present) * dimension * 4 // 2**20} MiB of vectors; the limit is "
            f"{MAX_VECTOR_BYTES // 2**20} MiB per run: search fewer rows.",
            param="data",
            code="dataset_too_large",
        )
    return {
        "model": model,
        "dimension": dimension,
        "rows": rows,
        "vectors": b"".join(vectors for vectors, _, _ in embedded),
        "query": query,
    }


async def _embed(engine: Engine, texts: list[str], model: str | None) -> tuple[bytes, str, int]:
    """One embeddings request: the vectors as little-endian float32 bytes, in input order,
    the model that made them and their length."""
    import base64

    from aiplatform.api.openai import EmbeddingRequest
    from aiplatform.engines.embeddings.operations import EMBED

    inputs: list[str | int | list[int]] = list(texts)
    request = EmbeddingRequest(input=inputs, model=model, encoding_format="base64")
    response = await engine.invoke(EMBED, request)
    ordered = sorted(response.data, key=lambda item: item.index)
    if [item.index for item in ordered] != list(range(len(texts))):
        raise InternalError(
            f"The embeddings engine answered {len(ordered)} vectors for {len(texts)} texts.",
            code="bad_embeddings",
        )
    chunks = [
        base64.b64decode(item.embedding)
        if isinstance(item.embedding, str)
        else _float32(item.embedding)
        for item in ordered
    ]
    dimension = len(chunks[0]) // 4
    if any(len(chunk) != 4 * dimension for chunk in chunks) or dimension == 0:
        raise InternalError("The embeddings engine answered vectors of unequal length.")
    return b"".join(chunks), response.model, dimension


def _float32(values: list[float]) -> bytes:
    import struct

    return struct.pack(f"<{len(values)}f", *values)


# ----------------------------------------------------------------------------- compute


def compute(
    frame: pd.DataFrame, params: FaissRetrievalParams, run: Run
) -> Outcome[FaissRetrievalResult]:
    texts = [_text(cell) for cell in columns.column(frame, params.text_column, "text_column")]
    shown = columns.columns(frame, params.columns, "columns") if params.columns else None
    _check_request(params, texts)
    prepared = run.prepared
    if prepared is None:
        raise InternalError(
            "The faiss_retrieval computation runs after its prepare step, which embeds the "
            "texts; it was called without it.",
            code="not_prepared",
        )
    run.progress(0.1, "building the index")
    rows, vectors, query = _vectors(prepared, len(frame))
    skipped = len(frame) - len(rows)
    if skipped:
        run.warn(f"{skipped} rows without a text in '{params.text_column}' are not indexed.")
    index = _index(vectors)
    run.progress(0.4, "searching")
    query_matches = row_matches = None
    names = shown if shown is not None else [str(name) for name in frame.columns]
    if query is not None:
        found = _search(index, query, params.k, exclude=None)
        query_matches = _matches(found, rows, texts, frame, names)
    if params.row is not None:
        position = rows.index(params.row)
        found = _search(index, vectors[position], params.k, exclude=position)
        row_matches = _matches(found, rows, texts, frame, names)
    run.progress(0.8, "charting the matches")
    result = FaissRetrievalResult(
        model=str(prepared["model"]),
        dimension=int(prepared["dimension"]),
        indexed=len(rows),
        skipped=skipped,
        query_matches=query_matches,
        row_matches=row_matches,
    )
    return Outcome(result=result, summary=_summary(result, params), charts=[_chart(result, params)])


def _text(cell: Any) -> str | None:
    """A cell as a text to embed; None for a missing or blank one."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    text = str(cell)
    return text if text.strip() else None


def _check_request(params: FaissRetrievalParams, texts: list[str | None]) -> None:
    """A query or a row to search from (a row in the table, with a text), and texts to
    search (400s naming the param)."""
    if all(text is None for text in texts):
        raise InvalidRequestError(
            f"Column '{params.text_column}' given as text_column has no texts (all missing).",
            param="params.text_column",
            code="all_missing",
        )
    if params.query is None and params.row is None:
        raise InvalidRequestError(
            "Give a query text, a row whose neighbours are wanted, or both.",
            param="params.query",
            code="missing_param",
        )
    if params.query is not None and not params.query.strip():
        raise InvalidRequestError("The query is blank.", param="params.query", code="blank_query")
    if params.row is not None:
        if params.row >= len(texts):
            raise InvalidRequestError(
                f"Row {params.row} is not in the data (rows 0 to {len(texts) - 1}).",
                param="params.row",
                code="row_out_of_range",
            )
        if texts[params.row] is None:
            raise InvalidRequestError(
                f"Row {params.row} has no text in '{params.text_column}'.",
                param="params.row",
                code="missing_text",
            )


def _vectors(
    prepared: dict[str, Any], count: int
) -> tuple[list[int], np.ndarray, np.ndarray | None]:
    """The rows embedded, their vectors and the query's (float32), as prepare made them."""
    import numpy as np

    rows = [int(row) for row in prepared["rows"]]
    dimension = int(prepared["dimension"])
    vectors = np.frombuffer(prepared["vectors"], dtype="<f4").astype(np.float32)
    if dimension < 1 or len(vectors) != len(rows) * dimension or any(r >= count for r in rows):
        raise InternalError("The prepared vectors do not match the table.", code="not_prepared")
    query = prepared.get("query")
    query_vector = None if query is None else np.frombuffer(query, dtype="<f4").astype(np.float32)
    return rows, vectors.reshape(len(rows), dimension), query_vector


def _index(vectors: np.ndarray) -> Any:
    """An exact inner-product index over the L2-normalised vectors (cosine similarity)."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    normalised = vectors.copy()
    faiss.normalize_L2(normalised)
    index.add(normalised)
    return index


def _search(
    index: Any, vector: np.ndarray, k: int, *, exclude: int | None
) -> list[tuple[int, float]]:
    """(position in the index, cosine) of the ``k`` nearest, nearest first, ``exclude`` left
    out."""
    import faiss
    import numpy as np

    probe = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32).copy()
    faiss.normalize_L2(probe)
    wanted = min(index.ntotal, k + (exclude is not None))
    scores, positions = index.search(probe, wanted)
    found = [
        (int(position), float(score))
        for position, score in zip(positions[0], scores[0], strict=True)
        if position >= 0 and position != exclude
    ]
    return found[:k]


def _matches(
    found: list[tuple[int, float]],
    rows: list[int],
    texts: list[str | None],
    frame: pd.DataFrame,
    names: list[str],
) -> list[Match]:
    return [
        Match(
            row=rows[position],
            score=min(1.0, max(-1.0, score)),
            text=str(texts[rows[position]]),
            values={name: charts.json_safe(frame[name].iloc[rows[position]]) for name in names},
        )
        for position, score in found
    ]


def _summary(result: FaissRetrievalResult, params: FaissRetrievalParams) -> str:
    parts = [
        f"{result.indexed} texts of '{params.text_column}' embedded with {result.model} "
        f"({result.dimension} dimensions) and searched by cosine similarity"
        + (f"; {result.skipped} rows without a text left out." if result.skipped else ".")
    ]
    for label, matches in (
        ("the query", result.query_matches),
        (f"row {params.row}", result.row_matches),
    ):
        if matches:
            best = matches[0]
            parts.append(
                f"Nearest to {label}: row {best.row} (cosine {best.score:.3f}); "
                f"{len(matches)} rows returned, the last at {matches[-1].score:.3f}."
            )
        elif matches is not None:
            parts.append(f"No other row to compare {label} with.")
    return " ".join(parts)


def _chart(result: FaissRetrievalResult, params: FaissRetrievalParams) -> dict[str, Any]:
    points = [
        {"search": label, "row": f"row {match.row}", "score": match.score}
        for label, matches in (
            ("query", result.query_matches),
            (f"row {params.row}", result.row_matches),
        )
        for match in matches or ()
    ]
    return charts.bar(
        points,
        charts.field("score", "quantitative", title="cosine similarity"),
        charts.field("row", "nominal", title="row", sort="-x"),
        title=f"rows nearest in meaning ({params.text_column})",
        color=charts.field("search", "nominal", title="nearest to"),
        yOffset=charts.field("search", "nominal"),
    )


# ----------------------------------------------------------------------------- the example

_EXAMPLE_TEXTS = (
    ("billing", "I was charged twice for the same order on my credit card."),
    ("billing", "The invoice shows a charge I do not recognise."),
    ("billing", "Please refund the duplicate payment on my card."),
    ("billing", "My card was charged but the order was cancelled."),
    ("billing", "Why is the monthly subscription price higher on this invoice?"),
    ("billing", "The refund for my returned order has not reached my card."),
    ("delivery", "The parcel arrived late and the box was damaged."),
    ("delivery", "My package has not arrived after two weeks."),
    ("delivery", "The courier left the parcel at the wrong address."),
    ("delivery", "Tracking says delivered but no package is at my door."),
    ("delivery", "The delivery was split into two parcels and one is missing."),
    ("delivery", "Can the courier deliver the package on Saturday?"),
    ("account", "I cannot log in because the password reset email never arrives."),
    ("account", "How do I change the email address on my account?"),
    ("account", "My account was locked after too many login attempts."),
    ("account", "Please delete my account and my personal data."),
    ("account", "The two-factor code is not accepted when I log in."),
    ("account", "I forgot my password and the reset link has expired."),
    ("product", "The blender makes a loud noise and smells of burning."),
    ("product", "The jacket size is smaller than the size chart says."),
    ("product", "The phone case cracked after one week of use."),
    ("product", "Does the coffee machine work with ground coffee?"),
    ("product", "The lamp flickers when it is switched on."),
    ("product", "The shoes are a different colour from the photo."),
)


def _example_data() -> Records:
    """Two dozen support messages in four topics; one has no text."""
    rows: Records = [
        {"ticket": 100 + index, "topic": topic, "message": text}
        for index, (topic, text) in enumerate(_EXAMPLE_TEXTS)
    ]
    rows.append({"ticket": 100 + len(rows), "topic": "account", "message": None})
    return rows


METHOD: Method[FaissRetrievalParams, FaissRetrievalResult] = Method(
    name="faiss_retrieval",
    summary="The rows nearest in meaning to a query or a row: a text column embedded by the "
    "embeddings engine and searched with FAISS (cosine similarity).",
    params=FaissRetrievalParams,
    result=FaissRetrievalResult,
    compute=compute,
    example=MethodExample(
        data=_example_data(),
        params=FaissRetrievalParams(
            text_column="message",
            query="I was charged twice and want a refund on my card",
            row=6,
            k=3,
            columns=["ticket", "topic"],
        ),
    ),
    min_rows=2,
    calls=("embeddings",),
    prepare=prepare,
)
