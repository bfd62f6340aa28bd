"""A transformers sequence classifier from a local folder (e.g. a DistilRoBERTa fine-tuned on
the seven emotions). Its labels must be the seven ``EMOTION_LABELS`` (any case)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiplatform.api.emotion import EMOTION_LABELS
from aiplatform.engines.emotion.backend import Scores

__all__ = ["TransformersEmotionBackend"]

_MAX_TOKENS = 512


class TransformersEmotionBackend:
    def __init__(self, *, path: str | None, device: str = "cpu") -> None:
        self._path = path
        self._device = device
        self._tokenizer: Any = None
        self._model: Any = None
        self._labels: list[str] = []

    def load(self) -> None:
        if not self._path:
            raise ValueError("the transformers emotion backend needs engines.emotion.path")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(self._path)
        labels = [str(model.config.id2label[index]).lower() for index in range(model.num_labels)]
        if sorted(labels) != sorted(EMOTION_LABELS):
            raise ValueError(
                f"the model's labels {labels} are not the emotions {list(EMOTION_LABELS)}"
            )
        self._tokenizer = AutoTokenizer.from_pretrained(self._path)
        self._model = model.to(self._device).eval()
        self._labels = labels

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        import torch

        batch = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=min(_MAX_TOKENS, self._tokenizer.model_max_length),
            return_tensors="pt",
        ).to(self._device)
        with torch.inference_mode():
            probabilities = torch.softmax(self._model(**batch).logits.float(), dim=-1).cpu()
        return [
            {label: round(float(p), 6) for label, p in zip(self._labels, row, strict=True)}
            for row in probabilities
        ]
