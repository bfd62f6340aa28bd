"""The emotion section, ``[engines.emotion]``."""

from __future__ import annotations

from typing import Literal

from aiplatform.engines.settings import EngineSettings, PositiveInt

__all__ = ["EmotionSettings"]


class EmotionSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    #: ``lexicon`` (VADER + the NRC lexicon), ``transformers`` (a sequence-classification folder
    #: whose labels are the seven emotions), or ``fake``.
    backend: Literal["lexicon", "transformers", "fake"] = "lexicon"
    #: The name ``/v1/models`` lists.
    model: str = "emotion-lexicon"
    #: transformers: a sequence-classification folder (e.g. a DistilRoBERTa emotion model).
    path: str | None = None
    #: Torch device.
    device: str = "cpu"
    #: Texts per model call.
    max_batch_size: PositiveInt = 32
