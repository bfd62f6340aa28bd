"""The remote adapter: one generic HTTP client for every engine kind."""

from aiplatform.remote.client import RemoteEngine

__all__ = ["RemoteEngine"]
