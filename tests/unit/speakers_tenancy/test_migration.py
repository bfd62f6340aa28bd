"""Speakers enrolled before tenancy, kept in ``speakers.json``, move into the database once, as
the default tenant's (ids, names, times and voice prints as they were), and the file goes;
under a storage key they land encrypted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from aiplatform.api.audio import SpeakerEmbeddingRequest, SpeakerIdentifyRequest, SpeakerList
from aiplatform.api.audio import SpeakerListRequest as ListRequest
from aiplatform.audio.decode import decode_audio
from aiplatform.engines.speakers import EMBED_SPEAKER, IDENTIFY_SPEAKERS, LIST_SPEAKERS
from aiplatform.engines.speakers.encoder import FakeVoiceEncoder
from aiplatform.engines.speakers.engine import LocalSpeakersEngine
from aiplatform.engines.speakers.settings import SpeakersSettings
from aiplatform.engines.speakers.store import DATABASE, LEGACY_FILE
from aiplatform.errors import EngineUnavailableError
from aiplatform.forms import FilePart
from aiplatform.storage import StorageKeyError
from aiplatform.tenant import DEFAULT_TENANT, acting_as
from tests.speech import VOICE_A, VOICE_B, speak

pytestmark = pytest.mark.anyio

KEY = "a storage key for the tests only"
ALICE = {"id": "spk_a1a1a1a1a1a1a1a1", "name": "Alice", "created_at": 1_700_000_000}
BORIS = {"id": "spk_b2b2b2b2b2b2b2b2", "name": "Boris", "created_at": 1_700_000_100}


def legacy_file(folder: Path) -> Path:
    """A ``speakers.json`` as earlier versions wrote it, and a temporary copy a crash left."""
    encoder = FakeVoiceEncoder()
    speakers = [
        {**ALICE, "duration": 2.5, "embedding": voice_print(encoder, VOICE_A)},
        {**BORIS, "duration": 3.25, "embedding": voice_print(encoder, VOICE_B)},
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LEGACY_FILE
    path.write_bytes(msgspec.json.encode({"version": 1, "speakers": speakers}))
    (folder / ".speakers-k2j4h5").write_bytes(b'{"version": 1, "speakers": [')
    return path


def half_written(folder: Path) -> list[Path]:
    return list(folder.glob(".speakers-*"))


def voice_print(encoder: FakeVoiceEncoder, voice: str) -> list[float]:
    samples = decode_audio(speak("My voice, as it was enrolled.", voice), max_duration_s=60)
    return [float(value) for value in encoder.embed(samples)]


async def speakers_of(engine: LocalSpeakersEngine, owner: str) -> SpeakerList:
    with acting_as(owner):
        return await engine.invoke(LIST_SPEAKERS, ListRequest())


async def identified(engine: LocalSpeakersEngine, voice: str) -> str | None:
    part = FilePart(filename="v.wav", data=speak("Someone else's sentence entirely.", voice))
    embedded = await engine.invoke(EMBED_SPEAKER, SpeakerEmbeddingRequest(file=part))
    request = SpeakerIdentifyRequest(embeddings=[embedded.embedding])
    return (await engine.invoke(IDENTIFY_SPEAKERS, request)).data[0].name


async def test_speakers_json_moves_into_the_default_tenants_database(tmp_path: Path) -> None:
    legacy = legacy_file(tmp_path)
    settings = SpeakersSettings(backend="fake", data_dir=str(tmp_path))
    async with LocalSpeakersEngine(settings) as engine:
        listed = await speakers_of(engine, DEFAULT_TENANT)
        assert [(s.id, s.name, s.created_at, s.duration) for s in listed.data] == [
            (ALICE["id"], "Alice", ALICE["created_at"], 2.5),
            (BORIS["id"], "Boris", BORIS["created_at"], 3.25),
        ]
        assert await identified(engine, VOICE_A) == "Alice"
        assert await identified(engine, VOICE_B) == "Boris"
        assert (await speakers_of(engine, "acme")).data == []
    assert not legacy.exists()
    assert half_written(tmp_path) == []
    assert (tmp_path / DATABASE).exists()
    async with LocalSpeakersEngine(settings) as engine:  # moved once, not again
        assert len((await speakers_of(engine, DEFAULT_TENANT)).data) == 2


async def test_a_move_cut_short_before_the_file_went_is_not_repeated(tmp_path: Path) -> None:
    settings = SpeakersSettings(backend="fake", data_dir=str(tmp_path))
    legacy_file(tmp_path)
    async with LocalSpeakersEngine(settings):
        pass
    legacy_file(tmp_path)  # as if the process stopped between the commit and the removal
    async with LocalSpeakersEngine(settings) as engine:
        listed = await speakers_of(engine, DEFAULT_TENANT)
        assert [s.id for s in listed.data] == [ALICE["id"], BORIS["id"]]
    assert not (tmp_path / LEGACY_FILE).exists()


async def test_under_a_key_the_voice_prints_land_encrypted(tmp_path: Path) -> None:
    legacy_file(tmp_path)
    settings = SpeakersSettings(backend="fake", data_dir=str(tmp_path))
    async with LocalSpeakersEngine(settings, storage_key=KEY) as engine:
        assert await identified(engine, VOICE_A) == "Alice"
    with sqlite3.connect(tmp_path / DATABASE) as plain, pytest.raises(sqlite3.DatabaseError):
        plain.execute("SELECT count(*) FROM speakers").fetchone()
    async with LocalSpeakersEngine(settings) as engine:
        with pytest.raises(EngineUnavailableError) as caught:
            await engine.wait_loaded()
    assert caught.value.message == (
        f"Engine 'speakers' failed to load: {StorageKeyError(tmp_path / DATABASE, keyed=False)}"
    )
