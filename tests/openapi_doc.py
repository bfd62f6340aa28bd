"""The served OpenAPI document, as committed in ``docs/openapi.json``.

Regenerate after changing the API: ``python -m tests.openapi_doc`` (writes the file);
``tests/unit/test_openapi_snapshot.py`` fails while the two differ. The app is built with every
kind's fake backend, so no model is needed, and with authentication on; keys are sorted and
nothing of the machine (paths, library versions) is in the document, so the file is the same
wherever it is generated.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec
from litestar.serialization import encode_json

from aiplatform.auth.settings import AuthSettings
from aiplatform.server.app import create_app
from aiplatform.testing import fake_settings

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
REGENERATE = "python -m tests.openapi_doc"


def served_openapi() -> str:
    """The OpenAPI document the app serves at ``/docs/openapi.json``, as stable JSON text."""
    with tempfile.TemporaryDirectory() as folder:
        settings = fake_settings(folder)
        # with authentication on, so its routes (/v1/auth, /v1/keys, /v1/admin) are described
        auth = AuthSettings(enabled=True, data_dir=str(Path(folder) / "auth"))
        app = create_app(msgspec.structs.replace(settings, auth=auth))
        # encoded as the route encodes it (examples are wire Structs), then made canonical
        schema = canonical(json.loads(encode_json(app.openapi_schema.to_schema())))
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def canonical(value: Any) -> Any:
    """``value`` with each operation's ``parameters`` sorted by (location, name): litestar
    lists path parameters in set order, which changes with the process's hash seed, and their
    order means nothing in OpenAPI."""
    if isinstance(value, list):
        return [canonical(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: canonical(item) for key, item in value.items()}
    parameters = out.get("parameters")
    if isinstance(parameters, list) and all(isinstance(p, dict) for p in parameters):
        out["parameters"] = sorted(parameters, key=lambda p: (p.get("in", ""), p.get("name", "")))
    return out


def main() -> None:
    DOCUMENT.write_text(served_openapi(), encoding="utf-8")
    print(f"wrote {DOCUMENT}", file=sys.stderr)


if __name__ == "__main__":
    main()
