"""Any audio container (wav, flac, mp3, ogg, webm, m4a ...) to 16 kHz mono float32.

Decoding and resampling go through PyAV, FFmpeg's libraries as shipped in its wheels, so no
system FFmpeg is needed. Anything that is not decodable audio is the client's error (400), never
a crash: these bytes come straight from an upload.
"""

from __future__ import annotations

import io
import wave

import numpy as np
import numpy.typing as npt

from aiplatform.errors import InvalidRequestError

__all__ = ["SAMPLE_RATE", "Samples", "decode_audio", "pcm16_to_float", "to_wav"]

#: The rate every audio engine works at.
SAMPLE_RATE = 16_000

Samples = npt.NDArray[np.float32]

#: The upload's form field, named by every decoding error.
_PARAM = "file"


def decode_audio(data: bytes, *, max_duration_s: float) -> Samples:
    """The audio in ``data`` as 16 kHz mono float32 samples in [-1, 1].

    Raises :class:`InvalidRequestError` for an empty file, bytes that are not audio, a file
    with no audio stream or no samples, and audio longer than ``max_duration_s``.
    """
    if not data:
        raise InvalidRequestError("The uploaded file is empty.", param=_PARAM, code="empty_file")
    limit = int(max_duration_s * SAMPLE_RATE)
    ready = _pcm16_wav_at_rate(data)
    if ready is not None:
        if ready.size > limit:
            raise _too_long(max_duration_s)
        return ready
    return _decode_with_av(data, limit, max_duration_s)


def _pcm16_wav_at_rate(data: bytes) -> Samples | None:
    """The samples of a complete 16-bit PCM mono WAV at 16 kHz, read directly (what PyAV would
    decode them to, without its ~15 ms of set-up per file); None for anything else, which PyAV
    then decodes or refuses with its own error."""
    if not data.startswith(b"RIFF") or data[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            shape = (reader.getnchannels(), reader.getsampwidth(), reader.getframerate())
            if shape != (1, 2, SAMPLE_RATE) or reader.getcomptype() != "NONE":
                return None
            count = reader.getnframes()
            frames = reader.readframes(count)
    except (wave.Error, EOFError, ValueError):
        return None
    if count == 0 or len(frames) != 2 * count:
        return None  # empty or cut short: PyAV decides
    return pcm16_to_float(frames)


def _decode_with_av(data: bytes, limit: int, max_duration_s: float) -> Samples:
    import av

    chunks: list[Samples] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            streams = container.streams.audio
            if not streams:
                raise InvalidRequestError(
                    "The uploaded file has no audio stream.", param=_PARAM, code="invalid_audio"
                )
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(streams[0]):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    chunks.append(chunk)
                    total += chunk.size
                if total > limit:
                    raise _too_long(max_duration_s)
            for out in resampler.resample(None):
                chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                chunks.append(chunk)
                total += chunk.size
    except InvalidRequestError:
        raise
    except (av.error.FFmpegError, ValueError, EOFError, IndexError) as exc:
        raise InvalidRequestError(
            f"The uploaded file could not be decoded as audio: {exc}",
            param=_PARAM,
            code="invalid_audio",
        ) from exc
    if total > limit:
        raise _too_long(max_duration_s)
    if total == 0:
        raise InvalidRequestError(
            "The uploaded file contains no audio samples.", param=_PARAM, code="invalid_audio"
        )
    samples = np.concatenate(chunks)
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples


def _too_long(max_duration_s: float) -> InvalidRequestError:
    return InvalidRequestError(
        f"The audio is longer than this server's limit of {max_duration_s:g} seconds.",
        param=_PARAM,
        code="audio_too_long",
    )


def pcm16_to_float(data: bytes) -> Samples:
    """Little-endian signed 16-bit PCM to float32 samples."""
    return (np.frombuffer(data, dtype="<i2").astype(np.float32)) / 32768.0


def to_wav(samples: Samples, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit PCM WAV file of ``samples`` (to send decoded audio to another engine)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    header = b"".join(
        (
            b"RIFF",
            (36 + len(pcm)).to_bytes(4, "little"),
            b"WAVEfmt ",
            (16).to_bytes(4, "little"),
            (1).to_bytes(2, "little"),  # PCM
            (1).to_bytes(2, "little"),  # mono
            sample_rate.to_bytes(4, "little"),
            (sample_rate * 2).to_bytes(4, "little"),
            (2).to_bytes(2, "little"),
            (16).to_bytes(2, "little"),
            b"data",
            len(pcm).to_bytes(4, "little"),
        )
    )
    return header + pcm
