"""Observability: metrics, traces, structured logs and request ids."""
