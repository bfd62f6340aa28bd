"""The in-process diarization engine."""

from __future__ import annotations

from aiplatform.api.audio import DiarizationRequest, DiarizationResult
from aiplatform.api.openai import ModelCard
from aiplatform.audio.decode import decode_audio
from aiplatform.engines.diarization.diarizer import DiarizationOptions, diarize
from aiplatform.engines.diarization.kind import DIARIZATION
from aiplatform.engines.diarization.operations import DIARIZE
from aiplatform.engines.diarization.settings import DiarizationSettings
from aiplatform.engines.diarization.vad import EnergyVad, SileroVad, Vad
from aiplatform.engines.local import LocalEngine
from aiplatform.engines.speakers.encoder import VoiceEncoder, make_voice_encoder
from aiplatform.errors import InvalidRequestError

__all__ = ["LocalDiarizationEngine"]


class LocalDiarizationEngine(LocalEngine):
    def __init__(
        self,
        settings: DiarizationSettings,
        *,
        encoder: VoiceEncoder | None = None,
        vad: Vad | None = None,
    ) -> None:
        super().__init__(DIARIZATION, settings=settings)
        if settings.hop_s > settings.window_s:
            raise ValueError("engines.diarization.hop_s must not exceed window_s")
        self._settings = settings
        self._encoder = encoder or make_voice_encoder(
            settings.backend, settings.device, settings.path
        )
        self._vad = vad or (EnergyVad() if settings.backend == "fake" else SileroVad())
        self.bind(DIARIZE, self.diarize)

    def load(self) -> None:
        self._vad.load()
        self._encoder.load()

    async def list_models(self) -> list[ModelCard]:
        return []

    async def diarize(self, request: DiarizationRequest) -> DiarizationResult:
        if (
            request.num_speakers is not None
            and request.max_speakers is not None
            and request.num_speakers > request.max_speakers
        ):
            raise InvalidRequestError(
                "num_speakers must not exceed max_speakers.", param="num_speakers"
            )
        settings = self._settings
        threshold = settings.merge_threshold
        options = DiarizationOptions(
            window_s=settings.window_s,
            hop_s=settings.hop_s,
            num_speakers=request.num_speakers,
            max_speakers=request.max_speakers or settings.max_speakers,
            same_voice_threshold=(
                threshold if threshold is not None else self._encoder.window_threshold
            ),
        )
        return await self.run_blocking(self._diarize, request.file.data, options)

    def _diarize(self, data: bytes, options: DiarizationOptions) -> DiarizationResult:
        samples = decode_audio(data, max_duration_s=self._settings.max_duration_s)
        return diarize(samples, self._vad, self._encoder, options)
