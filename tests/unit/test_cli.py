"""The command line: help, engine listing, configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aiplatform.cli import main


def test_engines_lists_mode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[engines.embeddings]\nurl = "http://pod:8000"\n')
    assert main(["engines", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "embeddings" in out
    assert "remote" in out
    assert "http://pod:8000" in out
    assert "models=smollm2-135m-instruct(llama_cpp)" in out


def test_bad_config_exits_with_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server]\nport = 'eighty'\n")
    assert main(["engines", "--config", str(config)]) == 2
    assert "port" in capsys.readouterr().err


def test_unknown_engine_in_serve_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--engines", "embeddings,teleport"]) == 2
    assert "teleport" in capsys.readouterr().err


def test_help_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiplatform", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--engines" in done.stdout
