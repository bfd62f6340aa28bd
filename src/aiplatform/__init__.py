"""aiplatform: a self-hosted, OpenAI-compatible AI platform.

Every engine runs in-process, or is forwarded to its own service by one setting. Importing this
package is cheap: engines load their model libraries only when they start.

As a library::

    from aiplatform import open_engine
    from aiplatform.api.openai import EmbeddingRequest
    from aiplatform.engines.embeddings import EMBED

    async with open_engine("embeddings") as engine:  # in-process, or remote if a url is set
        response = await engine.invoke(EMBED, EmbeddingRequest(input=["hello", "world"]))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiplatform.engines.base import Engine
    from aiplatform.settings import Settings

__version__ = "0.1.0"

__all__ = ["__version__", "open_engine"]


def open_engine(name: str, settings: Settings | None = None) -> Engine:
    """The engine ``name`` as the settings configure it: in-process, or forwarded to its ``url``.

    Enter it with ``async with`` before calling it; leaving the block releases the model or the
    connection pool. ``settings`` defaults to :func:`aiplatform.settings.load_settings`.
    """
    from aiplatform.server.wiring import build_configured
    from aiplatform.settings import load_settings

    settings = settings if settings is not None else load_settings()
    return build_configured(settings, name, served={})
