"""The storage section, ``[storage]``: how the engines' files are kept at rest."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["StorageSettings"]


class StorageSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Encrypts every SQLite database the engines keep (RAG collections, documents and
    #: conversation memory, job queues, the datasets catalogue, enrolled speakers' voice prints)
    #: with SQLCipher under this key. A random secret of at least 16 characters (``openssl rand
    #: -base64 32``), best given as ``AIPLATFORM_STORAGE__ENCRYPTION_KEY`` rather than in the
    #: file. Unset: plain SQLite. A database written with one setting is not opened with
    #: another: its engine fails to load, naming the file. RAG index files and dataset tables
    #: are not covered (see docs/security.md, "Data at rest").
    encryption_key: Annotated[str, msgspec.Meta(min_length=16)] | None = None
