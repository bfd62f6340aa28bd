"""A live transcription session outlives one bad utterance: a short final utterance gets no
speaker instead of ending the session, and the queue of utterances waiting to be transcribed
is bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from aiplatform.audio.decode import SAMPLE_RATE
from aiplatform.server import live
from aiplatform.server.app import create_app
from aiplatform.server.wiring import build_engines
from aiplatform.settings import load_settings
from tests.speech import speak_samples
from tests.support import FAKE_AUDIO_ENV


@pytest.fixture
def client() -> Iterator[TestClient[Any]]:
    settings = load_settings(env=FAKE_AUDIO_ENV)
    app = create_app(settings, engines=build_engines(settings))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def pcm(samples: np.ndarray[Any, Any]) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * SAMPLE_RATE))


def received(socket: Any) -> list[dict[str, Any]]:
    """The events up to ``session.done``, then ``{"type": "closed", "code": ...}``."""
    events = []
    while True:
        try:
            event = json.loads(socket.receive_text())
        except WebSocketDisconnect as closed:
            events.append({"type": "closed", "code": closed.code})
            return events
        events.append(event)


def test_a_short_utterance_gets_no_speaker_and_the_session_goes_on(
    client: TestClient[Any],
) -> None:
    longer = speak_samples("The weather is lovely today, and we are going for a walk.")
    short = longer[int(0.5 * SAMPLE_RATE) : int(0.8 * SAMPLE_RATE)]  # "yes" and a pause
    with client.websocket_connect("/v1/ws/transcribe?diarize=true") as socket:
        audio = pcm(short) + silence(1.0) + pcm(longer) + silence(1.0)
        step = 2 * SAMPLE_RATE // 10  # 100 ms messages, as a microphone sends them
        for at in range(0, len(audio), step):
            socket.send_bytes(audio[at : at + step])
        socket.send_text(json.dumps({"type": "end"}))
        events = received(socket)
    finals = [e for e in events if e["type"] == "transcript.final"]
    speakers = {e["segment_id"]: e["speaker"] for e in events if e["type"] == "speaker"}
    assert [e["type"] for e in events if e["type"] == "error"] == []
    assert events[-1] == {"type": "closed", "code": 1000}
    assert len(finals) == 2
    first, second = (final["segment_id"] for final in finals)
    assert speakers[first] is None  # too short to tell whose voice it is
    assert speakers[second] == "speaker_0"


def test_finals_waiting_for_transcription_are_bounded(
    client: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MAX_PENDING_FINALS", 2)
    utterance = pcm(speak_samples("one more sentence")) + silence(0.8)
    with client.websocket_connect("/v1/ws/transcribe") as socket:
        # much faster than real time: finals pile up faster than they are transcribed
        audio = utterance * 40
        step = 2 * SAMPLE_RATE // 10
        for at in range(0, len(audio), step):
            socket.send_bytes(audio[at : at + step])
        socket.send_text(json.dumps({"type": "end"}))
        events = received(socket)
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert [error["code"] for error in errors] == ["live_backlog_full"]
    assert events[-2:] == [
        {"type": "session.done"},
        {"type": "closed", "code": live.CLOSE_TRY_AGAIN_LATER},
    ]
