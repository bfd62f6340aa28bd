"""Enrolled speakers belong to the tenant that enrolled them: another tenant cannot list them,
delete them (a 404, as for an id that does not exist), be identified as them, or see their
names in its diarized transcriptions. Tenants are named by the ``x-aiplatform-tenant`` header,
as a gateway names them to its pods."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiplatform.api.audio import (
    SpeakerDeleteRequest,
    SpeakerEmbeddingRequest,
    SpeakerEnrollRequest,
    SpeakerIdentifyRequest,
    SpeakerListRequest,
)
from aiplatform.engines.speakers import (
    DELETE_SPEAKER,
    EMBED_SPEAKER,
    ENROLL_SPEAKER,
    IDENTIFY_SPEAKERS,
    LIST_SPEAKERS,
)
from aiplatform.engines.speakers.engine import LocalSpeakersEngine
from aiplatform.engines.speakers.settings import SpeakersSettings
from aiplatform.errors import NotFoundError
from aiplatform.forms import FilePart
from aiplatform.server.app import create_app
from aiplatform.server.wiring import build_engines
from aiplatform.settings import select_engines
from aiplatform.tenant import TENANT_HEADER, acting_as
from aiplatform.testing import fake_settings, in_mode
from tests.speech import VOICE_A, VOICE_B, conversation, speak

pytestmark = pytest.mark.anyio

ACME, GLOBEX = "acme", "globex"
ALICE_SAYS = "This is Alice speaking, hello."
ALSO_ALICE = "Another sentence in the same voice."


def tenant(name: str) -> dict[str, str]:
    return {TENANT_HEADER: name}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The ASR, speakers and diarization engines on their fakes, over ASGI."""
    settings = select_engines(fake_settings(tmp_path), ["asr", "speakers", "diarization"])
    engines = build_engines(settings)
    app = create_app(settings, engines=engines)
    async with AsyncExitStack() as stack:
        for engine in engines.values():
            await stack.enter_async_context(engine)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


async def enroll(http: httpx.AsyncClient, owner: str, name: str, voice: str) -> dict[str, Any]:
    response = await http.post(
        "/v1/speakers",
        files={"file": ("voice.wav", speak(ALICE_SAYS, voice), "audio/wav")},
        data={"name": name},
        headers=tenant(owner),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(http: httpx.AsyncClient, owner: str) -> list[str]:
    response = await http.get("/v1/speakers", headers=tenant(owner))
    assert response.status_code == 200, response.text
    return [speaker["name"] for speaker in response.json()["data"]]


async def identified(http: httpx.AsyncClient, owner: str, voice: str) -> str | None:
    """The name the caller's enrolled speakers give to ``voice`` (None: no match)."""
    embedded = await http.post(
        "/v1/speakers/embeddings",
        files={"file": ("voice.wav", speak(ALSO_ALICE, voice), "audio/wav")},
        headers=tenant(owner),
    )
    matches = await http.post(
        "/v1/speakers/identify",
        json={"embeddings": [embedded.json()["embedding"]]},
        headers=tenant(owner),
    )
    assert matches.status_code == 200, matches.text
    name: str | None = matches.json()["data"][0]["name"]
    return name


async def diarized(http: httpx.AsyncClient, owner: str) -> httpx.Response:
    response = await http.post(
        "/v1/audio/transcriptions",
        files={"file": ("talk.wav", conversation().wav, "audio/wav")},
        data={"response_format": "verbose_json", "diarize": "true"},
        headers=tenant(owner),
    )
    assert response.status_code == 200, response.text
    return response


async def test_another_tenant_neither_lists_nor_deletes_a_speaker(
    http: httpx.AsyncClient,
) -> None:
    alice = await enroll(http, ACME, "Alice", VOICE_A)
    assert await listed(http, ACME) == ["Alice"]
    assert await listed(http, GLOBEX) == []
    refused = await http.delete(f"/v1/speakers/{alice['id']}", headers=tenant(GLOBEX))
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"]["code"] == "speaker_not_found"
    absent = await http.delete("/v1/speakers/spk_missing", headers=tenant(GLOBEX))
    error = absent.json()["error"]
    assert refused.json()["error"] == {
        **error,
        "message": error["message"].replace("spk_missing", alice["id"]),
    }
    assert await listed(http, ACME) == ["Alice"]
    deleted = await http.delete(f"/v1/speakers/{alice['id']}", headers=tenant(ACME))
    assert deleted.status_code == 200, deleted.text
    assert await listed(http, ACME) == []


async def test_a_voice_is_identified_only_among_the_callers_speakers(
    http: httpx.AsyncClient,
) -> None:
    await enroll(http, ACME, "Alice", VOICE_A)
    assert await identified(http, ACME, VOICE_A) == "Alice"
    assert await identified(http, GLOBEX, VOICE_A) is None
    await enroll(http, GLOBEX, "Ann", VOICE_A)  # the same voice, enrolled by the other tenant
    assert await identified(http, GLOBEX, VOICE_A) == "Ann"
    assert await identified(http, ACME, VOICE_A) == "Alice"
    assert await identified(http, ACME, VOICE_B) is None


async def test_a_diarized_transcription_names_only_the_callers_speakers(
    http: httpx.AsyncClient,
) -> None:
    await enroll(http, ACME, "Alice", VOICE_A)
    assert (await diarized(http, ACME)).json()["speakers"] == ["Alice", "speaker_1"]
    other = await diarized(http, GLOBEX)
    assert other.json()["speakers"] == ["speaker_0", "speaker_1"]
    assert "Alice" not in other.text


# -- the engine itself, in-process and through a pod -------------------------------------------


def _voice(text: str, voice: str) -> FilePart:
    return FilePart(filename="voice.wav", content_type="audio/wav", data=speak(text, voice))


@pytest.mark.parametrize("mode", ["local", "remote-asgi"])
async def test_the_engine_keeps_each_tenants_speakers_apart(tmp_path: Path, mode: Any) -> None:
    settings = SpeakersSettings(backend="fake", data_dir=str(tmp_path))
    async with in_mode(mode, LocalSpeakersEngine(settings), settings) as engine:
        with acting_as(ACME):
            alice = await engine.invoke(
                ENROLL_SPEAKER, SpeakerEnrollRequest(file=_voice(ALICE_SAYS, VOICE_A), name="Alice")
            )
        with acting_as(GLOBEX):
            assert (await engine.invoke(LIST_SPEAKERS, SpeakerListRequest())).data == []
            with pytest.raises(NotFoundError):
                await engine.invoke(DELETE_SPEAKER, SpeakerDeleteRequest(speaker_id=alice.id))
            voice = await engine.invoke(
                EMBED_SPEAKER, SpeakerEmbeddingRequest(file=_voice(ALSO_ALICE, VOICE_A))
            )
            request = SpeakerIdentifyRequest(embeddings=[voice.embedding])
            match = (await engine.invoke(IDENTIFY_SPEAKERS, request)).data[0]
            assert (match.speaker_id, match.name, match.score) == (None, None, 0.0)
        with acting_as(ACME):
            match = (await engine.invoke(IDENTIFY_SPEAKERS, request)).data[0]
            assert (match.speaker_id, match.name) == (alice.id, "Alice")
            listed = await engine.invoke(LIST_SPEAKERS, SpeakerListRequest())
            assert [speaker.id for speaker in listed.data] == [alice.id]
