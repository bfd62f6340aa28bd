"""Stop sequences split over tokens, the token limit, and usage per piece."""

from __future__ import annotations

from aiplatform.engines.llm.generation import TokenChoice
from aiplatform.engines.llm.pieces import PieceAssembler


def feed(assembler: PieceAssembler, tokens: list[str]) -> tuple[list[str], str | None, int]:
    texts: list[str] = []
    counted = 0
    reason: str | None = None
    for token in tokens:
        piece = assembler.add(token)
        if piece is not None:
            texts.append(piece.text)
            counted += piece.tokens
            reason = piece.finish_reason
        if assembler.done:
            break
    last = assembler.finish("length")
    if last is not None:
        texts.append(last.text)
        counted += last.tokens
        reason = last.finish_reason
    return texts, reason, counted


def test_stop_split_over_tokens_is_held_back_and_cut() -> None:
    texts, reason, counted = feed(
        PieceAssembler(["END"], None, logprobs=False), ["Hello", " E", "N", "D", " more"]
    )
    assert "".join(texts) == "Hello "
    assert reason == "stop"
    assert counted == 4
    assert all("E" not in text for text in texts)  # never sent, then taken back


def test_false_start_of_a_stop_is_released() -> None:
    texts, reason, counted = feed(
        PieceAssembler(["END"], 10, logprobs=False), ["a", "E", "N", "x", "b"]
    )
    assert "".join(texts) == "aENxb"
    assert reason == "length"
    assert counted == 5


def test_limit_ends_with_length_and_counts_every_token() -> None:
    texts, reason, counted = feed(PieceAssembler([], 3, logprobs=False), ["a", "b", "c", "d"])
    assert "".join(texts) == "abc"
    assert reason == "length"
    assert counted == 3


def test_logprobs_travel_with_their_piece() -> None:
    assembler = PieceAssembler(["xyz"], None, logprobs=True)
    piece = assembler.add("x", TokenChoice("x", -0.1))
    assert piece is None  # could be the stop
    piece = assembler.add("a", TokenChoice("a", -0.2))
    assert piece is not None
    assert piece.text == "xa"
    assert [choice.text for choice in piece.logprobs or []] == ["x", "a"]
