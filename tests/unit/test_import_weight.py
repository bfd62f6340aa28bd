"""The server, the CLI and the remote adapter import no model library (``--help`` stays fast)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = [
    "torch",
    "transformers",
    "sentence_transformers",
    "faiss",
    "llama_cpp",
    "nemo",
    # the analytic engines compute with these in worker processes only
    "pandas",
    "sklearn",
    "scipy",
    "statsmodels",
    "statsforecast",
    "networkx",
    "sympy",
    "gplearn",
    "pyarrow",
]


def test_server_and_remote_adapter_import_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "import aiplatform.cli, aiplatform.server.app, aiplatform.remote.client\n"
        "from aiplatform.server.app import create_app\n"
        "from aiplatform.settings import load_settings\n"
        "create_app(load_settings(env={}))\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
