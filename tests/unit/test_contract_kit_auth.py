"""The contract kit's pods require authentication: the credentials it makes, and how its server
processes and in-process pods are given them."""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiplatform.engines.embeddings.engine import LocalEmbeddingsEngine
from aiplatform.engines.embeddings.settings import EmbeddingsSettings
from aiplatform.engines.settings import default_data_dir
from aiplatform.settings import Settings, load_settings
from aiplatform.testing import POD_AUTH, PodAuth, ServerProcess, asgi_pod, fake_settings


def test_the_credentials_are_random_long_and_kept_out_of_reprs() -> None:
    other = PodAuth()
    for secret in (POD_AUTH.service_token, POD_AUTH.admin_password):
        assert len(secret) >= 32
        assert secret not in repr(POD_AUTH)
    assert POD_AUTH.service_token != POD_AUTH.admin_password
    assert other.service_token != POD_AUTH.service_token


def test_the_environment_gives_a_server_the_same_auth_section(tmp_path: Path) -> None:
    settings = load_settings(env=POD_AUTH.env(tmp_path / "auth"))
    assert settings.auth == POD_AUTH.settings(tmp_path / "auth")
    assert settings.auth_enabled
    assert settings.auth.service_token == POD_AUTH.service_token
    assert settings.auth.admin_password == POD_AUTH.admin_password
    assert settings.auth.data_dir == str(tmp_path / "auth")


def test_a_server_process_knows_the_service_token_it_was_given() -> None:
    assert ServerProcess(["--engines", "embeddings"], {}, 8123).service_token is None
    assert ServerProcess([], auth=POD_AUTH).service_token == POD_AUTH.service_token
    given = {"AIPLATFORM_AUTH__SERVICE_TOKEN": "t" * 40}
    assert ServerProcess([], given).service_token == "t" * 40
    assert ServerProcess([], given, auth=POD_AUTH).service_token == "t" * 40  # env wins


def test_a_served_pod_requires_auth_only_when_asked(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    assert ServerProcess.serving(settings, ["embeddings"]).service_token is None
    pod = ServerProcess.serving(settings, ["embeddings"], auth=POD_AUTH)
    assert pod.service_token == POD_AUTH.service_token


def test_the_in_process_pod_requires_auth_and_keeps_no_data_of_the_users() -> None:
    app = asgi_pod(LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake")))
    settings: Settings = app.state.settings
    assert settings.auth_enabled
    assert settings.auth.service_token == POD_AUTH.service_token
    assert settings.auth.admin_password == POD_AUTH.admin_password
    data_dir = Path(settings.auth.data_dir or default_data_dir())
    assert data_dir.is_relative_to(tempfile.gettempdir())
    assert not data_dir.is_relative_to(default_data_dir())
    other = asgi_pod(LocalEmbeddingsEngine(EmbeddingsSettings(backend="fake")))
    assert other.state.settings.auth.data_dir != settings.auth.data_dir
