"""aiplatform: a self-hosted, OpenAI-compatible AI platform.

Every engine runs in-process, or is forwarded to its own service by one setting. Importing this
package is cheap: engines load their model libraries only when they start.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
