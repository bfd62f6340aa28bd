"""The remote adapter: one generic HTTP client for every engine kind, over a swappable wire."""

from aiplatform.remote.client import RemoteEngine
from aiplatform.remote.wire import AiohttpWire, HttpxWire, Wire, WireError, WireOptions

__all__ = ["AiohttpWire", "HttpxWire", "RemoteEngine", "Wire", "WireError", "WireOptions"]
