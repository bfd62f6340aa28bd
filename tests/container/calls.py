"""What the container tests ask a deployment through the official ``openai`` SDK: embeddings, a
chat completion at temperature 0 and a transcription of espeak-ng speech, checked for sense."""

from __future__ import annotations

from dataclasses import dataclass

import jiwer
import numpy as np
import openai

from tests.speech import SENTENCES, speak

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
CHAT_MODEL = "smollm2-135m-instruct"
ASR_MODEL = "whisper-1"
TEXTS = ["The weather is lovely today.", "Stock markets fell sharply.", "It is sunny outside."]
SPOKEN = SENTENCES[2]
_WORDS = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


@dataclass(frozen=True)
class Answers:
    vectors: np.ndarray
    reply: str
    transcript: str


def client(url: str, key: str) -> openai.OpenAI:
    """No retries: a 503 must reach the test as the gateway sent it."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=300)


def embed(sdk: openai.OpenAI) -> np.ndarray:
    result = sdk.embeddings.create(model=EMBEDDING_MODEL, input=TEXTS)
    assert result.model == EMBEDDING_MODEL
    return np.array([item.embedding for item in result.data], dtype=np.float32)


def chat(sdk: openai.OpenAI) -> str:
    reply = sdk.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=24,
    )
    return reply.choices[0].message.content or ""


def transcribe(sdk: openai.OpenAI) -> str:
    speech = ("speech.wav", speak(SPOKEN), "audio/wav")
    return sdk.audio.transcriptions.create(model=ASR_MODEL, file=speech).text


def ask(url: str, key: str) -> Answers:
    with client(url, key) as sdk:
        return Answers(vectors=embed(sdk), reply=chat(sdk), transcript=transcribe(sdk))


def check(answers: Answers) -> None:
    """Real models answered: similar sentences lie closer, the chat model replied, and Whisper
    heard the sentence. (The chat reply is compared across deployments, not judged: at
    temperature 0 the 135M model's answer is fixed but not always right.)"""
    vectors = answers.vectors
    assert vectors.shape == (len(TEXTS), 384)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    assert similarity[0, 2] > similarity[0, 1] + 0.2, similarity
    assert answers.reply.strip(), "an empty chat reply"
    error = jiwer.wer(
        SPOKEN, answers.transcript, reference_transform=_WORDS, hypothesis_transform=_WORDS
    )
    assert error < 0.25, (error, answers.transcript)
