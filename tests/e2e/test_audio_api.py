"""The audio API on live servers: the official ``openai`` SDK, the diarize/emotion extensions,
bad input, and live transcription over the WebSocket; in a monolith and with the ASR engine
forwarded to its own pod. The fake ASR runs everywhere; Whisper tiny.en runs too, marked slow."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
import websockets

from aiplatform.audio.decode import SAMPLE_RATE, to_wav
from tests.speech import SENTENCES, VOICE_A, conversation, speak
from tests.support import ServerProcess

AUDIO_ENGINES = "asr,speakers,diarization,emotion"
ASR_BACKENDS = [
    "fake",
    pytest.param("tiny.en", marks=pytest.mark.slow),
]


def asr_env(backend: str) -> dict[str, str]:
    if backend == "fake":
        return {"AIPLATFORM_ENGINES__ASR__BACKEND": "fake"}
    return {
        "AIPLATFORM_ENGINES__ASR__BACKEND": "faster_whisper",
        "AIPLATFORM_ENGINES__ASR__PATH": "shipped:whisper-tiny.en",
    }


@pytest.fixture(scope="module", params=ASR_BACKENDS)
def asr_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def monolith(asr_backend: str) -> Iterator[ServerProcess]:
    server = ServerProcess(
        ["--engines", AUDIO_ENGINES],
        {**asr_env(asr_backend), "AIPLATFORM_ENGINES__ASR__MAX_DURATION_S": "30"},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def asr_pod(asr_backend: str) -> Iterator[ServerProcess]:
    server = ServerProcess(["--engines", "asr"], asr_env(asr_backend))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(asr_pod: ServerProcess) -> Iterator[ServerProcess]:
    """Speakers, diarization and emotion in-process; ASR forwarded to ``asr_pod``."""
    server = ServerProcess(
        ["--engines", AUDIO_ENGINES], {"AIPLATFORM_ENGINES__ASR__URL": asr_pod.url}
    )
    server.start()
    yield server
    server.stop()


def sdk(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def transcribe(server: ServerProcess, **kwargs: object) -> object:
    with sdk(server) as client:
        return client.audio.transcriptions.create(
            model="whisper-1", file=("speech.wav", speak(SENTENCES[0]), "audio/wav"), **kwargs
        )


def test_sdk_json_verbose_and_srt_agree_in_both_modes(
    monolith: ServerProcess, gateway: ServerProcess, asr_backend: str
) -> None:
    for server in (monolith, gateway):
        plain = transcribe(server)
        verbose = transcribe(
            server, response_format="verbose_json", timestamp_granularities=["word", "segment"]
        )
        subtitles = transcribe(server, response_format="srt")
        text = transcribe(server, response_format="text")
        assert plain.text == verbose.text  # type: ignore[attr-defined]
        assert verbose.words
        assert verbose.segments
        assert verbose.duration > 3  # type: ignore[attr-defined]
        starts = [word.start for word in verbose.words]  # type: ignore[attr-defined]
        assert starts == sorted(starts)
        assert isinstance(subtitles, str)
        assert subtitles.startswith("1\n00:00:00,")
        assert isinstance(text, str)
        assert text.strip() == plain.text
        if asr_backend != "fake":
            assert "speech recognition" in plain.text.lower()  # type: ignore[attr-defined]
    assert transcribe(monolith).text == transcribe(gateway).text  # type: ignore[attr-defined]


def test_sdk_streaming_transcription(gateway: ServerProcess) -> None:
    with sdk(gateway) as client:
        events = list(
            client.audio.transcriptions.create(
                model="whisper-1",
                file=("speech.wav", speak(SENTENCES[1]), "audio/wav"),
                stream=True,
            )
        )
    assert events[-1].type == "transcript.text.done"
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert deltas.strip() == events[-1].text


def test_diarize_and_emotion_in_one_call_with_a_remote_asr(gateway: ServerProcess) -> None:
    talk = conversation()
    response = httpx.post(
        f"{gateway.url}/v1/audio/transcriptions",
        files={"file": ("talk.wav", talk.wav, "audio/wav")},
        data={
            "response_format": "verbose_json",
            "diarize": "true",
            "emotion": "true",
            "timestamp_granularities[]": "word",
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    speakers = [segment["speaker"] for segment in body["segments"]]
    # one speaker per utterance, alternating
    changes = [a for a, b in itertools.pairwise(speakers) if a != b]
    assert body["speakers"] == ["speaker_0", "speaker_1"]
    assert speakers[0] == "speaker_0"
    assert len(changes) == 3
    assert all(word["speaker"] in body["speakers"] for word in body["words"])
    assert all(segment["emotion"] in segment["emotion_scores"] for segment in body["segments"])
    assert len(body["emotion_timeline"]) == len(body["segments"])
    vtt = httpx.post(
        f"{gateway.url}/v1/audio/transcriptions",
        files={"file": ("talk.wav", talk.wav, "audio/wav")},
        data={"response_format": "vtt", "diarize": "true"},
        timeout=120,
    ).text
    assert vtt.startswith("WEBVTT")
    assert "<v speaker_1>" in vtt


def test_enrolled_speakers_name_the_diarized_ones(monolith: ServerProcess) -> None:
    enrolled = httpx.post(
        f"{monolith.url}/v1/speakers",
        files={"file": ("alice.wav", speak("This is Alice speaking, hello.", VOICE_A))},
        data={"name": "Alice"},
    )
    assert enrolled.status_code == 200, enrolled.text
    try:
        response = httpx.post(
            f"{monolith.url}/v1/audio/transcriptions",
            files={"file": ("talk.wav", conversation().wav, "audio/wav")},
            data={"response_format": "verbose_json", "diarize": "true"},
            timeout=120,
        )
        assert response.json()["speakers"] == ["Alice", "speaker_1"]
    finally:
        httpx.delete(f"{monolith.url}/v1/speakers/{enrolled.json()['id']}")


# -- bad input ---------------------------------------------------------------------------------


def _corrupt_header() -> bytes:
    wav = bytearray(speak("Corrupt header."))
    wav[8:16] = b"XXXXXXXX"  # neither WAVE nor fmt
    return bytes(wav)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"%PDF-1.4 this is not audio" * 50, "invalid_audio"),
        (_corrupt_header(), "invalid_audio"),
        (to_wav(np.zeros(40 * SAMPLE_RATE, dtype=np.float32)), "audio_too_long"),
    ],
    ids=["empty", "not-audio", "corrupt-header", "too-long"],
)
def test_bad_audio_is_a_clear_400(monolith: ServerProcess, data: bytes, code: str) -> None:
    response = httpx.post(
        f"{monolith.url}/v1/audio/transcriptions", files={"file": ("x.wav", data, "audio/wav")}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "file", code)
    assert httpx.get(f"{monolith.url}/ready").status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"json": {"file": "x"}}, None),
        ({"data": {"model": "whisper-1"}, "files": {"other": ("a", b"b")}}, "file"),
        ({"files": {"file": ("a.wav", b"RIFF")}, "data": {"response_format": "pdf"}}, None),
        ({"files": {"file": ("a.wav", b"RIFF")}, "data": {"temperature": "hot"}}, None),
    ],
    ids=["json-body", "no-file", "bad-format", "bad-temperature"],
)
def test_malformed_requests_are_400s(
    monolith: ServerProcess, kwargs: dict[str, object], param: str | None
) -> None:
    response = httpx.post(f"{monolith.url}/v1/audio/transcriptions", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


def test_a_missing_asr_pod_is_a_503() -> None:
    server = ServerProcess(
        ["--engines", "asr"], {"AIPLATFORM_ENGINES__ASR__URL": "http://127.0.0.1:9"}
    )
    server.start(wait_ready=False)
    try:
        response = httpx.post(
            f"{server.url}/v1/audio/transcriptions",
            files={"file": ("a.wav", speak("Hello."), "audio/wav")},
            timeout=30,
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "upstream_unavailable"
    finally:
        server.stop()


# -- live transcription ------------------------------------------------------------------------


async def _live(
    server: ServerProcess, audio: bytes, query: str = "", chunk: int = 3200
) -> tuple[list[dict[str, object]], int | None]:
    url = server.url.replace("http", "ws") + "/v1/ws/transcribe" + query
    messages: list[dict[str, object]] = []
    async with websockets.connect(url) as socket:

        async def send() -> None:
            for start in range(0, len(audio), chunk):
                await socket.send(audio[start : start + chunk])
                await asyncio.sleep(0)
            await socket.send(json.dumps({"type": "end"}))

        sender = asyncio.create_task(send())
        try:
            async for message in socket:
                messages.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        sender.cancel()
        return messages, socket.close_code


def _pcm(wav: bytes) -> bytes:
    from aiplatform.audio.decode import decode_audio

    samples = decode_audio(wav, max_duration_s=600)
    return (samples * 32767).astype("<i2").tobytes()


@pytest.mark.anyio
async def test_live_transcription_with_speakers(gateway: ServerProcess) -> None:
    messages, close_code = await _live(gateway, _pcm(conversation().wav), "?diarize=true")
    assert close_code == 1000
    finals = [m for m in messages if m["type"] == "transcript.final"]
    speakers = [m["speaker"] for m in messages if m["type"] == "speaker"]
    assert [m["segment_id"] for m in finals] == [0, 1, 2, 3]
    assert speakers == ["speaker_0", "speaker_1", "speaker_0", "speaker_1"]
    assert messages[-1] == {"type": "session.done"}
    starts = [float(m["start"]) for m in finals]  # type: ignore[arg-type]
    assert starts == sorted(starts)


@pytest.mark.anyio
async def test_live_refuses_a_wrong_sample_rate_and_odd_frames(gateway: ServerProcess) -> None:
    messages, close_code = await _live(gateway, b"\x00\x00" * 1600, "?sample_rate=44100")
    assert close_code == 1003
    assert "16000" in str(messages[0]["error"])
    assert messages[0]["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    messages, close_code = await _live(gateway, b"\x00" * 3201, chunk=3201)
    assert close_code == 1007
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{gateway.url}/ready")).status_code == 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_live_needs_nothing_more_than_the_asr_engine(asr_pod: ServerProcess) -> None:
    messages, close_code = asyncio.run(_live(asr_pod, _pcm(speak(SENTENCES[2]))))
    assert close_code == 1000
    assert [m["type"] for m in messages].count("transcript.final") == 1
