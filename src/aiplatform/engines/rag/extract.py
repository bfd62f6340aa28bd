"""Text out of uploaded files: plain text and Markdown as they are, PDF through pypdf (page
texts joined by blank lines), HTML through BeautifulSoup (scripts, styles and markup dropped,
block elements on lines of their own).

A small file can cost a great deal to read (a PDF page's content stream compresses a
thousandfold, and pypdf parses it whole before it reads any text), so extraction is bounded
while it runs: at most ``max_pages`` pages and ``max_chars`` characters (it stops as soon as
either is passed), and ``timeout_s`` seconds, checked between pages and between the operators
of a page. A stream pypdf refuses to inflate (its own limit, ``LimitReachedError``) is a 400
like any unreadable file. The one step no check can interrupt is pypdf parsing one content
stream, so the engine runs PDF and HTML extraction in a worker process
(:func:`extract_bounded`) that it kills at the deadline.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import PurePath
from typing import Any

import msgspec

from aiplatform.errors import InvalidRequestError

__all__ = [
    "SUPPORTED",
    "ExtractRequest",
    "extract_bounded",
    "extract_text",
    "needs_process",
    "too_slow",
]

logger = logging.getLogger(__name__)

SUPPORTED = ("txt", "md", "pdf", "html")

_BY_SUFFIX = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
}
_BY_MEDIA_TYPE = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "application/pdf": "pdf",
    "text/html": "html",
    "application/xhtml+xml": "html",
}


class ExtractRequest(msgspec.Struct, kw_only=True):
    """An upload to extract, with the bounds that apply to it."""

    data: bytes
    filename: str
    content_type: str
    max_chars: int
    max_pages: int
    timeout_s: float


def needs_process(data: bytes, filename: str, content_type: str) -> bool:
    """Whether extracting the upload is parsing work worth a worker process (PDF, HTML)."""
    return _kind(data, filename, content_type) in ("pdf", "html")


def extract_bounded(request: ExtractRequest) -> str:
    """:func:`extract_text` with the request's bounds; a module-level function over msgspec
    types, so a worker process can run it."""
    return extract_text(
        request.data,
        request.filename,
        request.content_type,
        max_chars=request.max_chars,
        max_pages=request.max_pages,
        timeout_s=request.timeout_s,
    )


def extract_text(
    data: bytes,
    filename: str,
    content_type: str,
    *,
    max_chars: int | None = None,
    max_pages: int | None = None,
    timeout_s: float | None = None,
) -> str:
    """The document text of an upload; a 400 naming the problem when there is none, when it
    is longer than ``max_chars`` or ``max_pages``, or when reading it takes past
    ``timeout_s``."""
    kind = _kind(data, filename, content_type)
    if kind == "pdf":
        return _pdf_text(data, max_chars=max_chars, max_pages=max_pages, timeout_s=timeout_s)
    text = _decode(data)
    text = _html_text(text) if kind == "html" else text
    if max_chars is not None and len(text) > max_chars:
        raise _too_large(f"{len(text)} characters", max_chars)
    return text


def _too_large(what: str, limit: int, setting: str = "max_document_chars") -> InvalidRequestError:
    unit = "pages" if setting == "max_pdf_pages" else "characters"
    return InvalidRequestError(
        f"file has {what}; a document may have at most {limit} {unit} (engines.rag.{setting}).",
        param="file",
        code="document_too_large",
    )


def too_slow(timeout_s: float | None) -> InvalidRequestError:
    limit = f" {timeout_s:g} s" if timeout_s is not None else ""
    return InvalidRequestError(
        f"file took longer to read than the{limit} an upload may take "
        "(engines.rag.extract_timeout_s).",
        param="file",
        code="extraction_too_slow",
    )


def _kind(data: bytes, filename: str, content_type: str) -> str:
    if data.startswith(b"%PDF-"):
        return "pdf"
    kind = _BY_SUFFIX.get(PurePath(filename).suffix.lower()) or _BY_MEDIA_TYPE.get(
        content_type.split(";", maxsplit=1)[0].strip().lower()
    )
    if kind is not None:
        return kind
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    if b"\x00" in data[:4096]:
        raise InvalidRequestError(
            f"'{filename}' is not a supported document; upload plain text, Markdown, PDF or HTML.",
            param="file",
            code="unsupported_file",
        )
    return "txt"


def _decode(data: bytes) -> str:
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise InvalidRequestError(
            "The file is not UTF-8 text.", param="file", code="unsupported_encoding"
        ) from None


class _OutOfTimeError(Exception):
    """Raised from pypdf's operator callback once the deadline has passed."""


def _pdf_text(
    data: bytes, *, max_chars: int | None, max_pages: int | None, timeout_s: float | None
) -> str:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PdfReadError, PyPdfError

    deadline = time.monotonic() + timeout_s if timeout_s is not None else None

    def check_time(*_: Any) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise _OutOfTimeError

    texts: list[str] = []
    total = 0
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidRequestError(
                "The PDF is encrypted.", param="file", code="unsupported_file"
            )
        pages = len(reader.pages)
        if max_pages is not None and pages > max_pages:
            raise _too_large(f"{pages} pages", max_pages, "max_pdf_pages")
        for page in reader.pages:
            check_time()
            text = (page.extract_text(visitor_operand_before=check_time) or "").strip()
            if text:
                texts.append(text)
                total += len(text) + 2
                if max_chars is not None and total - 2 > max_chars:
                    raise _too_large(f"more than {max_chars} characters", max_chars)
    except _OutOfTimeError:
        raise too_slow(timeout_s) from None
    except LimitReachedError as exc:
        logger.debug("PDF past pypdf's limits: %s", exc)
        raise InvalidRequestError(
            f"The PDF cannot be read: {exc}", param="file", code="document_too_large"
        ) from exc
    except (PyPdfError, PdfReadError, ValueError, KeyError, TypeError, RecursionError) as exc:
        logger.debug("cannot read PDF: %s", exc)
        raise InvalidRequestError(
            f"The PDF cannot be read: {exc}", param="file", code="invalid_file"
        ) from exc
    return "\n\n".join(texts)


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for element in soup(["script", "style", "noscript", "template", "head"]):
        element.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)
