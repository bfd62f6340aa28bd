"""The committed ``docs/openapi.json`` is the document the server serves."""

from __future__ import annotations

import difflib
import re

import pytest

from tests.openapi_doc import DOCUMENT, REGENERATE, served_openapi


@pytest.fixture(scope="module")
def served() -> str:
    return served_openapi()


def test_committed_openapi_is_the_served_one(served: str) -> None:
    committed = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.is_file() else ""
    if committed != served:
        diff = difflib.unified_diff(
            committed.splitlines(), served.splitlines(), "docs/openapi.json", "served", lineterm=""
        )
        shown = "\n".join(list(diff)[:60])
        pytest.fail(
            f"docs/openapi.json differs from the served API; regenerate it with "
            f"`{REGENERATE}` and commit it.\n{shown}",
            pytrace=False,
        )


def test_document_holds_nothing_of_the_machine(served: str) -> None:
    """No absolute path of this machine, and no library version, so that the file is the same
    wherever it is generated."""
    paths = re.findall(r'"(/(?:home|tmp|root|usr|var|work|opt|Users)/[^"]*)"', served)
    assert paths == []
    assert "site-packages" not in served
    assert "Python 3." not in served
