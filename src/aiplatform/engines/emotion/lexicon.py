"""The shipped default: the NRC emotion lexicon (via ``nrclex``) with VADER's sentiment.

Words vote for the NRC emotions they carry; a word within three tokens after a negation ("not",
"never", "n't") does not vote. VADER's compound score, which does handle negation and intensity,
adds joy or sadness to strongly polar texts whose words named no emotion. A neutral prior keeps
texts without emotional words neutral. Light and deterministic: no model to load.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiplatform.api.emotion import EMOTION_LABELS
from aiplatform.engines.emotion.backend import Scores

__all__ = ["LexiconEmotionBackend"]

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
_NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor"})
_NEGATION_REACH = 3
_SUFFIXES = (("ied", "y"), ("ing", ""), ("ed", ""), ("ly", ""), ("es", ""), ("s", ""))
_NRC_EMOTIONS = frozenset(EMOTION_LABELS) - {"neutral"}
#: Weight of "no emotion" against the votes; one emotional word outweighs it.
_NEUTRAL_PRIOR = 0.75
#: |compound| from which VADER's polarity counts as an emotion of its own.
_POLARITY_FLOOR = 0.5


class LexiconEmotionBackend:
    def __init__(self) -> None:
        self._lexicon: dict[str, frozenset[str]] = {}
        self._vader: Any = None

    def load(self) -> None:
        from nrclex import NRCLex
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        # NRCLex reads its bundled lexicon; ask it about every word once to get the table.
        reader = NRCLex()
        table: dict[str, list[str]] = reader.__lexicon__
        self._lexicon = {
            word: frozenset(emotions) & _NRC_EMOTIONS
            for word, emotions in table.items()
            if set(emotions) & _NRC_EMOTIONS
        }
        self._vader = SentimentIntensityAnalyzer()

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        return [self._scores(text) for text in texts]

    def _scores(self, text: str) -> Scores:
        votes = dict.fromkeys(EMOTION_LABELS, 0.0)
        negated_until = -1
        for index, token in enumerate(_TOKEN.findall(text.lower())):
            if token in _NEGATIONS or token.endswith("n't"):
                negated_until = index + _NEGATION_REACH
                continue
            if index <= negated_until:
                continue
            for emotion in self._emotions_of(token):
                votes[emotion] += 1.0
        compound = float(self._vader.polarity_scores(text)["compound"])
        if compound >= _POLARITY_FLOOR and votes["joy"] == 0:
            votes["joy"] += compound
        elif compound <= -_POLARITY_FLOOR and not any(
            votes[label] for label in ("anger", "disgust", "fear", "sadness")
        ):
            votes["sadness"] += -compound
        votes["neutral"] = _NEUTRAL_PRIOR
        total = sum(votes.values())
        return {label: round(value / total, 6) for label, value in votes.items()}

    def _emotions_of(self, token: str) -> frozenset[str]:
        found = self._lexicon.get(token)
        if found is not None:
            return found
        for suffix, replacement in _SUFFIXES:
            if token.endswith(suffix) and len(token) > len(suffix) + 2:
                found = self._lexicon.get(token[: -len(suffix)] + replacement)
                if found is not None:
                    return found
        return frozenset()
