"""JSON request bodies must say so: ``Content-Type: application/json``.

Any web page may send a ``text/plain`` (or form-encoded, or multipart) body to any server
without asking it first: that is a CORS "simple request". Only a JSON content type makes the
browser send a preflight, which the server answers only for the origins it allows. So a route
that takes JSON refuses every other content type with 415, before it reads the body or calls
an engine. Accepted: ``application/json`` and ``application/*+json``, in UTF-8 (a ``charset``
parameter, when there is one, must say so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from litestar import Request

from aiplatform.errors import InvalidRequestError

__all__ = ["check_json_body", "has_no_body", "is_json_media_type", "require_json_body"]

_JSON_SUFFIX = re.compile(r"application/[!#$%&'*+.^_`|~0-9a-z-]+\+json")
_UTF8 = ("utf-8", "utf8")


def is_json_media_type(media_type: str, options: Mapping[str, str]) -> bool:
    """Whether a ``Content-Type`` (lower-case media type, parameters) announces UTF-8 JSON."""
    if media_type != "application/json" and not _JSON_SUFFIX.fullmatch(media_type):
        return False
    return options.get("charset", "utf-8").strip().lower() in _UTF8


def has_no_body(headers: Mapping[str, str]) -> bool:
    """Whether the request's headers announce no body (no length, or a length of 0, and no
    chunked transfer)."""
    return headers.get("content-length", "0").strip() == "0" and "transfer-encoding" not in headers


def check_json_body(
    where: str,
    content_type: tuple[str, Mapping[str, str]],
    headers: Mapping[str, str],
    *,
    empty_allowed: bool,
) -> None:
    """Refuse (415 ``unsupported_media_type``) a body that does not come as JSON.

    ``where`` names the route (``POST /v1/embeddings``). With ``empty_allowed`` (a route whose
    every field has a default) a request with neither a body nor a content type is accepted,
    as OpenAI's cancel endpoints accept a bare ``POST``.
    """
    media_type, options = content_type
    if is_json_media_type(media_type, options):
        return
    if empty_allowed and not media_type and has_no_body(headers):
        return
    if not media_type:
        sent = "this request has no Content-Type"
    elif is_json_media_type(media_type, {}):
        sent = f"JSON is UTF-8, not {options.get('charset', '')[:40]}"
    else:
        sent = f"not {media_type[:100]}"
    raise InvalidRequestError(
        f"{where} takes a JSON body: send it with Content-Type: application/json ({sent}).",
        code="unsupported_media_type",
        status_code=415,
    )


async def require_json_body(request: Request[Any, Any, Any]) -> None:
    """A ``before_request`` hook for a hand-written route that takes a JSON body
    (``@post(..., before_request=require_json_body)``): :func:`check_json_body` before
    litestar reads the body."""
    where = f"{request.method} {request.url.path}"
    check_json_body(where, request.content_type, request.headers, empty_allowed=False)
