"""Helpers for the analytic engines' tests: run a method's computation directly (in this process,
as its worker would), and check charts against the Vega-Lite schema."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

from aiplatform.engines.analytics.method import Records
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.engines.analytics.worker import MethodCall, MethodOutput, TableData, run_method


class Direct(msgspec.Struct, kw_only=True):
    """A computation's outcome, decoded: ``result`` as the method's result type."""

    result: Any
    summary: str
    charts: list[dict[str, Any]]
    warnings: list[str]
    progress: list[tuple[float, str]]


def run_direct(
    name: str,
    data: Records,
    params: dict[str, Any] | msgspec.Struct,
    *,
    seed: int = 0,
    tables: dict[str, Records] | None = None,
    max_rows: int = 1_000_000,
    prepared: Any = None,
) -> Direct:
    """Run engine ``name`` on ``data`` in this process; errors raise as the engine raises them
    (``InvalidRequestError`` ...). ``prepared``: what the engine's prepare step would have
    handed its computation (engines that call other engines)."""
    method = METHODS[name]
    typed = params if isinstance(params, msgspec.Struct) else msgspec.convert(params, method.params)
    reports: list[tuple[float, str]] = []
    output: MethodOutput = run_method(
        MethodCall(
            method=name,
            params=msgspec.msgpack.encode(typed),
            seed=seed,
            table=TableData(records=data),
            tables={key: TableData(records=value) for key, value in (tables or {}).items()},
            max_rows=max_rows,
            prepared=msgspec.msgpack.encode(prepared) if prepared is not None else b"",
        ),
        lambda fraction, stage: reports.append((fraction, stage)),
    )
    return Direct(
        result=msgspec.msgpack.decode(output.result, type=method.result),
        summary=output.summary,
        charts=output.charts,
        warnings=output.warnings,
        progress=reports,
    )


@cache
def _vega_lite_validator() -> Any:
    import altair
    import jsonschema

    schema_file = (
        Path(altair.__file__).parent / "vegalite" / "v6" / "schema" / "vega-lite-schema.json"
    )
    schema = json.loads(schema_file.read_text())
    return jsonschema.Draft7Validator(schema)


def assert_valid_charts(charts: list[dict[str, Any]]) -> None:
    """Every chart validates against the Vega-Lite JSON schema altair ships."""
    validator = _vega_lite_validator()
    for spec in charts:
        errors = sorted(validator.iter_errors(spec), key=lambda error: list(error.path))
        assert not errors, f"{spec.get('title')}: {errors[0].message} at {list(errors[0].path)}"
