"""Documents the RAG tests upload, made by the tests: an HTML page and a PDF."""

from __future__ import annotations

import html


def html_page(sentence: str) -> bytes:
    """A page with the sentence in its body, and markup, a script and a style around it."""
    return f"""<!doctype html>
<html><head><title>Log</title><style>p {{ color: red; }}</style></head>
<body><nav><a href="/">Home</a></nav>
<script>var tracking = "script";</script>
<article><h1>Ship log</h1><p>{html.escape(sentence)}</p></article>
</body></html>""".encode()


def pdf_file(sentence: str, pages: int = 1) -> bytes:
    """A PDF with the sentence on each page (fpdf2, its built-in Helvetica)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for number in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 10, f"Page {number + 1}. {sentence}")
    return bytes(pdf.output())
