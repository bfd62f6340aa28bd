"""Ids that name things in a URL path: collections, documents, conversations, speakers, jobs.

An id is one path segment. ``.`` and ``..`` are dot segments, which HTTP clients and proxies
resolve away (``/collections/c1/documents/..`` is ``/collections/c1``), and an id holding ``/``
spans segments: either would make a forwarded call reach a different route than the one asked
for, and neither could ever be addressed again. So every wire type that carries such an id uses
:data:`Id`, which refuses them (and control characters) when the thing is created and whenever
it is named; the remote adapter percent-encodes path values on top of that
(:func:`path_segment`).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

import msgspec

from aiplatform.errors import InvalidRequestError

__all__ = ["ID_PATTERN", "ID_RULE", "Id", "check_id", "explain_id_error", "path_segment"]

_CHAR = r"[^/\x00-\x1f\x7f]"
_NOT_DOT = r"[^/.\x00-\x1f\x7f]"
#: One path segment that is not a dot segment: no ``/``, no control character, not ``.`` or
#: ``..`` (``...`` and ``.env`` are ordinary names). ``(?![\s\S])`` ends the text where ``$``
#: would also accept a trailing newline; it reads the same in Python and in JSON Schema.
ID_PATTERN = rf"^(?:{_NOT_DOT}{_CHAR}*|\.{_NOT_DOT}{_CHAR}*|\.\.{_CHAR}+)(?![\s\S])"
#: The rule in words, for error messages.
ID_RULE = "1 to 200 characters, not '.' or '..', without '/' or control characters"

Id = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=ID_PATTERN,
        description=f"An id or name usable as a URL path segment: {ID_RULE}.",
    ),
]

_ID_CHECK = re.compile(ID_PATTERN)
_PATTERN_MESSAGE = f"Expected `str` matching regex {ID_PATTERN!r}"


def check_id(name: str, value: str) -> str:
    """``value`` when it is a valid :data:`Id`; otherwise a 400 naming the field ``name``."""
    if not 1 <= len(value) <= 200 or _ID_CHECK.search(value) is None:
        raise InvalidRequestError(
            f"Invalid value for '{name}': {value!r} is not a valid id ({ID_RULE}).", param=name
        )
    return value


def explain_id_error(message: str) -> str:
    """A msgspec validation message with the id pattern replaced by its rule in words."""
    return message.replace(_PATTERN_MESSAGE, f"Expected an id ({ID_RULE})")


def path_segment(value: str) -> str:
    """``value`` percent-encoded as one path segment that no client or proxy can resolve or
    split: every reserved character is encoded, ``.`` as well (``%2E``), so that even a value
    that is a dot segment stays a literal one. The wire must send it as encoded."""
    return quote(value, safe="").replace(".", "%2E")
