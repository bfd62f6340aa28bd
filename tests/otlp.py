"""What a collector receives, read as OpenTelemetry's own protobuf messages: OTLP's JSON encoding
parsed by protobuf's strict JSON parser (an unknown field or a value of the wrong type fails)."""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_IDS = {"traceId", "spanId", "parentSpanId"}


def _ids_as_base64(node: Any) -> Any:
    """OTLP's JSON writes ids in hex where protobuf's JSON mapping expects base64."""
    if isinstance(node, list):
        return [_ids_as_base64(item) for item in node]
    if isinstance(node, dict):
        return {
            key: base64.b64encode(bytes.fromhex(value)).decode()
            if key in _IDS and value
            else _ids_as_base64(value)
            for key, value in node.items()
        }
    return node


def export_request(body: bytes) -> ExportTraceServiceRequest:
    """An OTLP/HTTP JSON ``/v1/traces`` body as the message it encodes."""
    return json_format.Parse(
        json.dumps(_ids_as_base64(json.loads(body))), ExportTraceServiceRequest()
    )
