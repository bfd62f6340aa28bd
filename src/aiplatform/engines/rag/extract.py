"""Text out of uploaded files: plain text and Markdown as they are, PDF through pypdf (page
texts joined by blank lines), HTML through BeautifulSoup (scripts, styles and markup dropped,
block elements on lines of their own)."""

from __future__ import annotations

import io
import logging
from pathlib import PurePath

from aiplatform.errors import InvalidRequestError

__all__ = ["SUPPORTED", "extract_text"]

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


def extract_text(data: bytes, filename: str, content_type: str) -> str:
    """The document text of an upload; a 400 naming the problem when there is none."""
    kind = _kind(data, filename, content_type)
    if kind == "pdf":
        return _pdf_text(data)
    text = _decode(data)
    return _html_text(text) if kind == "html" else text


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


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidRequestError(
                "The PDF is encrypted.", param="file", code="unsupported_file"
            )
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        logger.debug("cannot read PDF: %s", exc)
        raise InvalidRequestError(
            f"The PDF cannot be read: {exc}", param="file", code="invalid_file"
        ) from exc
    return "\n\n".join(page.strip() for page in pages if page.strip())


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for element in soup(["script", "style", "noscript", "template", "head"]):
        element.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)
