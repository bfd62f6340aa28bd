"""Analytic engines: computations on tables, in worker processes, in-process or forwarded.

One kind, ``analytics``, serves every analytic engine: each is a method module under
``methods/`` whose declaration makes its route, calls, schemas, tests and docs.
"""

from aiplatform.engines.analytics.kind import ANALYTICS

__all__ = ["ANALYTICS"]
