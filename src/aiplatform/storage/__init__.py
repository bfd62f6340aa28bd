"""Data at rest: the SQLite files the engines keep, plain or encrypted under the configured
storage key (``[storage] encryption_key``)."""

from aiplatform.storage.settings import StorageSettings
from aiplatform.storage.sqlite import StorageKeyError, connect

__all__ = ["StorageKeyError", "StorageSettings", "connect"]
