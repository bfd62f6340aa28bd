"""The analytic engines' reference in ``docs/analytics.md``, generated from their declarations.

Between ``<!-- analytics-engines -->`` and ``<!-- /analytics-engines -->`` :func:`render` writes
one section per registered engine: its summary, its params (from their ``#:`` comments), its
result fields, and its example as a ``curl`` call and a Python call — the requests the contract
suite runs, which a test also runs from the document against a real server. Run
``python -m aiplatform.engines.analytics.docs docs/analytics.md`` after changing an engine;
``--check`` only reports a difference.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from aiplatform.engines.analytics.method import Method
from aiplatform.engines.analytics.methods import METHODS
from aiplatform.settings_docs import field_docs, regenerate, table

__all__ = ["example_body", "main", "render", "section"]

_BLOCK = re.compile(
    r"(<!-- analytics-engines -->\n)(?P<body>.*?)(<!-- /analytics-engines -->)", re.S
)


def example_body(method: Method[Any, Any]) -> dict[str, Any]:
    """The example request's JSON body."""
    params: dict[str, Any] = msgspec.to_builtins(method.example.params)
    return {"params": params, "data": method.example.data}


def _json_lines(body: dict[str, Any]) -> str:
    """The body as JSON with one record per line: long tables stay readable."""
    encode = msgspec.json.encode
    rows = ",\n".join(f"  {encode(row).decode()}" for row in body["data"])
    return f'{{"params": {encode(body["params"]).decode()},\n "data": [\n{rows}\n ]}}'


def _type_name(kind: Any) -> str:
    text = str(kind).replace("typing.", "")
    return re.sub(r"[\w.]+\.(\w+)", r"\1", text).replace("<class '", "").replace("'>", "")


def _result_table(method: Method[Any, Any]) -> str:
    docs = field_docs(method.result)  # type: ignore[arg-type]  # a class is hashable
    rows = ["| field | type | meaning |", "|---|---|---|"]
    for info in msgspec.structs.fields(method.result):
        meaning = docs.get(info.name, "").replace("``", "`").replace("|", "\\|")
        rows.append(f"| `{info.name}` | `{_type_name(info.type)}` | {meaning} |")
    return "\n".join(rows) + "\n"


def section(method: Method[Any, Any]) -> str:
    """One engine's section."""
    name = method.name
    body = _json_lines(example_body(method))
    return (
        f"### `{name}`\n\n{method.summary.rstrip('.')}.\n\n"
        f"`POST /v1/analytics/{name}`\n\n"
        f"**params**\n\n{table(method.params)}\n"
        f"**result**\n\n{_result_table(method)}\n"
        "**Example**\n\n"
        "```bash\n"
        f"curl -s http://127.0.0.1:8000/v1/analytics/{name} \\\n"
        "  -H 'content-type: application/json' -d @- <<'JSON'\n"
        f"{body}\n"
        "JSON\n"
        "```\n\n"
        "```python\n"
        "import httpx\n\n"
        "# body: the JSON of the curl example above, as a dict\n"
        f'answer = httpx.post("http://127.0.0.1:8000/v1/analytics/{name}", json=body, '
        "timeout=600).json()\n"
        'print(answer["summary"])\n'
        "```\n"
    )


def render(text: str) -> str:
    """``text`` with the engine sections rewritten from the registered engines."""
    if not _BLOCK.search(text):
        raise ValueError("the document has no <!-- analytics-engines --> block")
    sections = "\n".join(section(method) for method in METHODS.values())
    return _BLOCK.sub(lambda match: f"{match[1]}\n{sections}\n{match[3]}", text)


def main(argv: Sequence[str] | None = None) -> int:
    return regenerate(argv, render, module=__spec__.name, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
