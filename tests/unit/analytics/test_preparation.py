"""What an analytic engine that calls other engines gets: the engines this server has (served,
forwarded, or none: never built for it), and the request's table a column at a time."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aiplatform.engines.analytics.engine import LocalAnalyticsEngine
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.preparation import MethodPreparation
from aiplatform.engines.analytics.worker import TableData
from aiplatform.engines.base import Engine
from aiplatform.engines.owned import OwningEngine
from aiplatform.errors import EngineUnavailableError, InvalidRequestError
from aiplatform.remote.client import RemoteEngine
from aiplatform.server.wiring import build_configured, build_engines
from aiplatform.settings import Settings, select_engines
from aiplatform.testing import fake_settings

pytestmark = pytest.mark.anyio

ROWS: list[dict[str, Any]] = [
    {"text": "red", "n": 1},
    {"text": None, "n": 2},
    {"n": 3},
    {"text": "blue", "n": 4},
]


def analytics_of(engine: Engine) -> LocalAnalyticsEngine:
    inner = engine.inner if isinstance(engine, OwningEngine) else engine
    assert isinstance(inner, LocalAnalyticsEngine)
    return inner


def owned_kinds(engine: Engine) -> list[str]:
    if not isinstance(engine, OwningEngine):
        return []
    return [owned.kind.name for owned in engine._owned]


def test_a_monolith_gives_analytics_the_engines_it_serves(tmp_path: Path) -> None:
    engines = build_engines(fake_settings(tmp_path))
    analytics = analytics_of(engines["analytics"])
    assert analytics.called_kinds == ("embeddings", "rag", "llm")
    assert analytics._engines["embeddings"] is engines["embeddings"]
    assert owned_kinds(engines["analytics"]) == []  # nothing built twice


def test_an_analytics_pod_builds_none_of_them_in_process(tmp_path: Path) -> None:
    pod = select_engines(fake_settings(tmp_path), ["analytics"])
    engine = build_configured(pod, "analytics", served={})
    assert analytics_of(engine).called_kinds == ()
    assert owned_kinds(engine) == ["datasets"]  # a required use is built, as before


def with_urls(settings: Settings, **urls: str) -> Settings:
    import msgspec

    sections = {
        name: msgspec.structs.replace(settings.engine(name), url=url) for name, url in urls.items()
    }
    engines = msgspec.structs.replace(settings.engines, **sections)
    return msgspec.structs.replace(settings, engines=engines)


def test_a_pod_reaches_the_engines_its_sections_forward(tmp_path: Path) -> None:
    pod = select_engines(
        with_urls(fake_settings(tmp_path), embeddings="http://embeddings:8000"), ["analytics"]
    )
    engine = build_configured(pod, "analytics", served={})
    analytics = analytics_of(engine)
    assert analytics.called_kinds == ("embeddings",)
    assert isinstance(analytics._engines["embeddings"], RemoteEngine)


def test_the_contract_kit_builds_them_all(tmp_path: Path) -> None:
    engine = build_configured(fake_settings(tmp_path), "analytics", served={}, build_optional=True)
    assert analytics_of(engine).called_kinds == ("embeddings", "rag", "llm")
    # the RAG engine built for it embeds with the embeddings engine built for it
    assert owned_kinds(engine) == ["embeddings", "rag", "llm", "datasets"]


def preparation(table: TableData, engines: dict[str, Engine] | None = None) -> MethodPreparation:
    # any registered method: what matters here is the kinds it declares it calls
    method = next(iter(METHODS.values()))
    return MethodPreparation(method, engines or {}, table)


def parquet_of(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame.from_records(rows).to_parquet(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("stored", [False, True], ids=["inline", "dataset"])
async def test_a_column_reads_in_row_order_with_gaps(stored: bool) -> None:
    table = TableData(parquet=parquet_of(ROWS)) if stored else TableData(records=ROWS)
    prep = preparation(table)
    assert await prep.column("text", "text_column") == ["red", None, None, "blue"]
    assert await prep.column("n", "id_column") == [1, 2, 3, 4]


@pytest.mark.parametrize("stored", [False, True], ids=["inline", "dataset"])
async def test_an_unknown_column_is_a_400_naming_the_param(stored: bool) -> None:
    table = TableData(parquet=parquet_of(ROWS)) if stored else TableData(records=ROWS)
    with pytest.raises(InvalidRequestError) as refused:
        await preparation(table).column("nope", "text_column")
    assert (refused.value.code, refused.value.param) == ("unknown_column", "params.text_column")
    assert "nope" in refused.value.message


def test_an_engine_the_server_lacks_is_a_503_naming_the_setting() -> None:
    method = next(iter(METHODS.values()))
    declared = type(method)(**{**_fields(method), "calls": ("embeddings",)})
    prep = MethodPreparation(declared, {}, TableData(records=ROWS))
    with pytest.raises(EngineUnavailableError) as refused:
        prep.engine("embeddings")
    assert refused.value.code == "engine_unavailable"
    assert "engines.embeddings.url" in refused.value.message
    with pytest.raises(ValueError, match="does not declare"):
        prep.engine("llm")  # a kind the method did not declare is a bug of the method


def _fields(method: Any) -> dict[str, Any]:
    import dataclasses

    return {field.name: getattr(method, field.name) for field in dataclasses.fields(method)}
