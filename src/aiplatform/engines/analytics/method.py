"""What one analytic engine declares: its params, its result, an example and its computation.

An analytic engine ("method") is one module under ``engines/analytics/methods/``; everything
else — its route ``POST /v1/analytics/<name>``, the in-process call in a worker process, the
remote call, its entry in ``GET /v1/analytics/engines``, its JSON schemas, the contract tests
and its section of the docs — comes from the :class:`Method` it declares. The module stays
light: the libraries it computes with are imported inside :attr:`Method.compute`, which only
ever runs in a worker process.

``compute(frame, params, run)`` gets the request's table as a pandas DataFrame (inline records
or a stored dataset), the decoded params and a :class:`Run`; it returns an :class:`Outcome`.
A method that needs another engine's work (texts embedded, a RAG collection searched, an LLM's
grade) declares :attr:`Method.prepare`: it runs in the server process before the computation,
calls those engines through their protocols (so they may be in-process or remote), and what it
returns reaches ``compute`` as :attr:`Run.prepared`.
It validates the column roles it is given with :mod:`aiplatform.engines.analytics.columns`
(each bad input is a 4xx naming the column and the rule) and raises
:class:`~aiplatform.errors.InvalidRequestError` (or
:class:`~aiplatform.errors.UnprocessableEntityError` when the data are valid but the method
cannot find an answer in them) rather than returning a made-up number.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

import msgspec

from aiplatform.api.tables import Cell, Records, Seed, TableInput

if TYPE_CHECKING:
    import pandas as pd

    from aiplatform.engines.base import Engine

__all__ = [
    "Cell",
    "Method",
    "MethodExample",
    "Outcome",
    "Preparation",
    "Records",
    "Run",
    "Seed",
    "TableInput",
]

#: A Vega-Lite specification with its data inline.
Chart: TypeAlias = dict[str, Any]

P = TypeVar("P", bound=msgspec.Struct)
R = TypeVar("R", bound=msgspec.Struct)


class Run:
    """What a computation gets besides its table and params: the seed, a progress callback,
    warnings, and the other tables its params name."""

    def __init__(
        self,
        *,
        seed: int,
        progress: Callable[[float, str], None] | None = None,
        tables: dict[str, pd.DataFrame] | None = None,
        prepared: Any = None,
    ) -> None:
        #: Every random choice derives from it: the same seed gives the same result.
        self.seed = seed
        self.warnings: list[str] = []
        self._progress = progress
        self._tables = tables or {}
        #: What the method's :attr:`Method.prepare` returned (None without one).
        self.prepared = prepared

    def progress(self, fraction: float, stage: str) -> None:
        """Report how far the computation is (0..1) and what it does now. Cheap: call it
        often; reports are sent at most ten times a second."""
        if self._progress is not None:
            self._progress(fraction, stage)

    def warn(self, message: str) -> None:
        """Add a warning to the response (something the caller should know about the data or
        the method's choices)."""
        self.warnings.append(message)

    def table(self, param: str) -> pd.DataFrame | None:
        """The table given in the params field ``param`` (one of :attr:`Method.tables`), or
        None when the request left it out."""
        return self._tables.get(param)


class Preparation(Protocol):
    """What :attr:`Method.prepare` gets in the server process: the engines it calls and the
    request's table, read a column at a time."""

    #: The request's seed (for the engines it calls that take one).
    seed: int

    def engine(self, kind: str) -> Engine:
        """The engine of ``kind`` (one of :attr:`Method.calls`): in-process or remote. None
        configured: 503 ``engine_unavailable`` naming the setting."""
        ...

    async def column(self, name: str, role: str) -> list[Cell]:
        """The values of column ``name`` of the request's table (inline or a stored dataset),
        in row order; an unknown column is a 400 ``unknown_column`` naming ``role`` (the
        params field)."""
        ...

    def warn(self, message: str) -> None:
        """Add a warning to the response."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome(Generic[R]):
    """A computation's answer."""

    result: R
    #: Plain sentences with the numbers that matter.
    summary: str
    #: Vega-Lite specs with inline data (see :mod:`aiplatform.engines.analytics.charts`).
    charts: list[Chart] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodExample(Generic[P]):
    """A small request the method answers quickly: documentation and the contract suite's
    input."""

    data: Records
    params: P


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Method(Generic[P, R]):
    """One analytic engine, declared once (compared and hashed by identity)."""

    #: The engine's name: ``POST /v1/analytics/<name>``.
    name: str
    #: One line for the engine listing and the docs.
    summary: str
    params: type[P]
    result: type[R]
    #: ``compute(frame, params, run)``; runs in a worker process only.
    compute: Callable[[pd.DataFrame, P, Run], Outcome[R]]
    example: MethodExample[P]
    #: Params fields of type :data:`TableInput` (records or a dataset id): they are resolved
    #: to DataFrames before the computation and read with :meth:`Run.table`.
    tables: tuple[str, ...] = ()
    #: The params field naming a column (or columns: the first is taken) that must be numeric;
    #: the bad-input tests break that column. None when no column must be numeric.
    numeric_param: str | None = None
    #: Fewest rows the method accepts (fewer: 400 ``too_few_rows``).
    min_rows: int = 3
    #: Kinds of engines :attr:`prepare` calls (``embeddings``, ``rag``, ``llm``).
    calls: tuple[str, ...] = ()
    #: ``prepare(params, preparation)``: runs in the server process before the computation
    #: (it may call the engines of :attr:`calls`); what it returns (msgpack-encodable: lists,
    #: dicts, numbers, text, bytes) is ``run.prepared`` in ``compute``.
    prepare: Callable[[P, Preparation], Awaitable[Any]] | None = None
    #: Which of :attr:`calls` a request with these params calls (the LLM only when asked to
    #: grade, say); unset: all of them. Checked before anything is computed, and when a job is
    #: submitted: a missing engine is a 503 then, not a job that waits for it.
    calls_for: Callable[[P], tuple[str, ...]] | None = None

    def called(self, params: P) -> tuple[str, ...]:
        """The kinds of engines a request with ``params`` calls."""
        return self.calls_for(params) if self.calls_for is not None else self.calls
