"""Settings come from a TOML file, environment variables override it, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiplatform.settings import SettingsError, engine_names, load_settings, select_engines


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aiplatform.toml"
    path.write_text(text)
    return path


def test_defaults_run_embeddings_locally() -> None:
    settings = load_settings(env={})
    assert settings.server.port == 8000
    assert settings.engines.embeddings.enabled
    assert not settings.engines.embeddings.is_remote
    assert settings.engines.embeddings.backend == "sentence_transformers"


def test_file_sets_local_and_remote_options(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
port = 9001

[engines.embeddings]
url = "http://embeddings:8000"
timeout_s = 5
""",
    )
    settings = load_settings(path, env={})
    assert settings.server.port == 9001
    assert settings.engines.embeddings.url == "http://embeddings:8000"
    assert settings.engines.embeddings.is_remote
    assert settings.engines.embeddings.timeout_s == 5.0


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9001\n")
    env = {
        "AIPLATFORM_CONFIG": str(path),
        "AIPLATFORM_SERVER__PORT": "9100",
        "AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": "fake",
        "AIPLATFORM_ENGINES__EMBEDDINGS__TRUNCATE": "true",
        "AIPLATFORM_ENGINES__EMBEDDINGS__URL": "",  # empty: leave to file/default
    }
    settings = load_settings(env=env)
    assert settings.server.port == 9100
    assert settings.engines.embeddings.backend == "fake"
    assert settings.engines.embeddings.truncate is True
    assert settings.engines.embeddings.url is None


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        ("[server]\nprot = 1\n", {}, "prot"),
        ("[server]\nport = 'x'\n", {}, "port"),
        ("[server\n", {}, "not valid TOML"),
        ("", {"AIPLATFORM_ENGINES__EMBEDDINGS__BACKEND": "nope"}, "backend"),
        ("", {"AIPLATFORM_SERVER__PORT": "70000"}, "port"),
        ("[server]\nport = 1\n", {"AIPLATFORM_SERVER__PORT__X": "1"}, "overrides a value"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        load_settings(write(tmp_path, text), env=env)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "absent.toml", env={})


def test_select_engines_enables_only_named() -> None:
    settings = select_engines(load_settings(env={}), ["embeddings"])
    assert settings.engines.embeddings.enabled
    with pytest.raises(SettingsError, match="unknown engine"):
        select_engines(settings, ["embeddings", "warp-drive"])
    assert "embeddings" in engine_names()
