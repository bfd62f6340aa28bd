"""Reading a ``/metrics`` answer the way Prometheus does."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Labels", "family_names", "samples", "value"]

#: A sample's labels, sorted by name.
Labels = tuple[tuple[str, str], ...]


def samples(text: str, name: str) -> dict[Labels, float]:
    """Every sample called ``name`` (``aiplatform_requests_total``, ``..._bucket``), by labels."""
    found: dict[Labels, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when it is absent)."""
    return samples(text, name).get(tuple(sorted(labels.items())), 0.0)


def family_names(text: str) -> dict[str, str]:
    """Every family the text declares (even one with no sample yet), with its type."""
    return {family.name: family.type for family in text_string_to_metric_families(text)}
