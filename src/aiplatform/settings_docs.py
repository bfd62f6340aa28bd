"""The configuration reference, generated from the settings Structs.

A field's documentation is the ``#:`` comment above it in the code. ``docs/configuration.md``
holds one marker per table, ``<!-- settings module:Struct -->`` ... ``<!-- /settings -->``;
:func:`render` rewrites what lies between from the Struct (the fields it declares itself, not
those of its bases), so the tables cannot drift from the code. Under
``<!-- settings other-kinds -->`` it writes a section for every registered kind that has no
table of its own elsewhere, so a new kind is documented the day it is registered. Run
``python -m aiplatform.settings_docs docs/configuration.md`` after changing a setting;
``--check`` only reports a difference (the test suite runs it).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

__all__ = [
    "documented_kinds",
    "documented_structs",
    "field_docs",
    "main",
    "regenerate",
    "render",
    "table",
]

_BLOCK = re.compile(
    r"(<!-- settings (?P<target>[\w.]+:\w+) -->\n)(?P<body>.*?)(<!-- /settings -->)", re.S
)
#: Where the sections of kinds that have no table of their own elsewhere in the file go.
_OTHER_KINDS = re.compile(
    r"(<!-- settings other-kinds -->\n)(?P<body>.*?)(<!-- /settings -->)", re.S
)


@cache
def field_docs(struct: type[msgspec.Struct]) -> dict[str, str]:
    """The ``#:`` comment above each field ``struct`` itself declares, as one line of text."""
    lines, _ = inspect.getsourcelines(struct)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    node = tree.body[0]
    assert isinstance(node, ast.ClassDef)
    source = textwrap.dedent("".join(lines)).splitlines()
    docs: dict[str, str] = {}
    for item in node.body:
        if not isinstance(item, ast.AnnAssign) or not isinstance(item.target, ast.Name):
            continue
        comment: list[str] = []
        row = item.lineno - 2
        while row >= 0 and source[row].strip().startswith("#:"):
            comment.insert(0, source[row].strip().removeprefix("#:").strip())
            row -= 1
        docs[item.target.id] = " ".join(comment)
    return docs


def _own_fields(struct: type[msgspec.Struct]) -> list[msgspec.structs.FieldInfo]:
    inherited: set[str] = set()
    for base in struct.__mro__[1:]:
        if base is not msgspec.Struct and issubclass(base, msgspec.Struct):
            inherited.update(base.__struct_fields__)
    return [info for info in msgspec.structs.fields(struct) if info.name not in inherited]


def _default(info: msgspec.structs.FieldInfo) -> str:
    if info.required:
        return "required"
    value: Any = (
        info.default if info.default_factory is msgspec.NODEFAULT else info.default_factory()
    )
    if value is None:
        return "unset"
    if isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
        return ", ".join(f"`{getattr(item, 'name', type(item).__name__)}`" for item in value)
    return (
        f"`{msgspec.json.encode(value).decode()}`" if not isinstance(value, str) else f"`{value}`"
    )


def _markdown(text: str) -> str:
    """reST literals (double backticks) as Markdown's, and ``|`` kept out of the table."""
    return text.replace("``", "`").replace("|", "\\|")


def table(struct: type[msgspec.Struct]) -> str:
    """The Markdown table of the fields ``struct`` declares: key, default, meaning."""
    docs = field_docs(struct)
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for info in _own_fields(struct):
        meaning = docs.get(info.name, "")
        if not meaning:
            raise ValueError(f"{struct.__name__}.{info.name} has no #: comment to document it")
        rows.append(f"| `{info.name}` | {_default(info)} | {_markdown(meaning)} |")
    return "\n".join(rows) + "\n"


def _resolve(target: str) -> type[msgspec.Struct]:
    module, _, name = target.partition(":")
    struct = getattr(importlib.import_module(module), name)
    if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
        raise TypeError(f"{target} is not a msgspec Struct")
    return struct


def documented_structs(text: str) -> list[type[msgspec.Struct]]:
    """The Structs whose tables ``text`` holds under their own markers."""
    return [_resolve(match["target"]) for match in _BLOCK.finditer(text)]


def documented_kinds(text: str) -> set[str]:
    """Names of the kinds whose settings ``text`` documents (after :func:`render`)."""
    from aiplatform.engines.registry import ENGINE_KINDS

    own = set(documented_structs(_OTHER_KINDS.sub("", text)))
    other = "".join(match["body"] for match in _OTHER_KINDS.finditer(text))
    return {
        name
        for name, kind in ENGINE_KINDS.items()
        if kind.settings_type in own or f"`[engines.{name}]`" in other
    }


def _other_kinds(documented: set[type[msgspec.Struct]]) -> str:
    """A section for each registered kind whose settings have no table of their own: a kind
    added to the registry is documented without editing the file."""
    from aiplatform.engines.registry import ENGINE_KINDS

    sections = [
        f"### `[engines.{kind.name}]`\n\n{kind.summary}.\n\n{table(kind.settings_type)}"
        for kind in ENGINE_KINDS.values()
        if kind.settings_type not in documented
    ]
    return "\n".join(sections) if sections else "Every engine is described above.\n"


def render(text: str) -> str:
    """``text`` with every settings table regenerated from its Struct, and the sections of the
    kinds documented nowhere else under the ``other-kinds`` marker."""
    text = _BLOCK.sub(lambda match: match[1] + table(_resolve(match["target"])) + match[4], text)
    outside = _OTHER_KINDS.sub("", text)
    documented = set(documented_structs(outside))
    return _OTHER_KINDS.sub(lambda match: match[1] + _other_kinds(documented) + match[3], text)


def main(argv: Sequence[str] | None = None) -> int:
    return regenerate(argv, render, module=__spec__.name, description=__doc__)


def regenerate(
    argv: Sequence[str] | None, render: Callable[[str], str], *, module: str, description: str
) -> int:
    """The command line of a generated document: rewrite the file given as ``path`` with
    ``render``, or with ``--check`` only report (exit status 1) that it differs."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("path", type=Path, help="the Markdown file to regenerate")
    parser.add_argument("--check", action="store_true", help="only report a difference")
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    rendered = render(text)
    if rendered == text:
        return 0
    if args.check:
        print(f"{args.path} is out of date: python -m {module} {args.path}")
        return 1
    args.path.write_text(rendered, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
