"""The up-front token estimate of a request body."""

from __future__ import annotations

from typing import Any

import pytest

from aiplatform.limits.estimate import estimate_tokens

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": [user("abcd")]}, 1),
        ({"messages": [user("abcde")]}, 2),  # rounded up
        ({"messages": [user("abc"), user("abcde")]}, 2),  # rounded once, over the whole prompt
        ({"messages": [user("a" * 40)], "max_tokens": 100}, 110),
        ({"messages": [user("a" * 40)], "max_completion_tokens": 7, "max_tokens": 100}, 17),
        ({"messages": [user("a" * 40)], "max_tokens": 5, "n": 3}, 25),
        ({"messages": [user([{"type": "text", "text": "abcdefgh"}, {"type": "image_url"}])]}, 2),
        (
            {
                "messages": [
                    {"role": "system", "content": "abcd"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"function": {"name": "f", "arguments": '{"x": 12}'}}],
                    },
                ]
            },
            4,  # 4 + 9 characters
        ),
        ({"messages": [user("abcd")], "max_tokens": "many", "n": True}, 1),  # wrong types: 0
        ({"messages": "not a list"}, 0),
        ({}, 0),
    ],
)
def test_chat(body: dict[str, Any], expected: int) -> None:
    assert estimate_tokens(body, CHAT) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"prompt": "a" * 8}, 2 + 16),  # the server's default max_tokens
        ({"prompt": ["a" * 8], "max_tokens": 4}, 6),
        ({"prompt": "abc", "max_tokens": 0, "n": 2}, 1),
    ],
)
def test_completions(body: dict[str, Any], expected: int) -> None:
    assert estimate_tokens(body, COMPLETIONS) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"input": "a" * 9}, 3),
        ({"input": ["abcd", "abcd", "ab"]}, 3),
        ({"input": [1, 2, 3]}, 3),  # token ids count as they are
        ({"input": [[1, 2], [3, 4, 5]]}, 5),
        ({"input": 12}, 0),
        ({"input": ["abcd"], "max_tokens": 100}, 1),  # nothing generated
    ],
)
def test_embeddings(body: dict[str, Any], expected: int) -> None:
    assert estimate_tokens(body, EMBEDDINGS) == expected


def test_other_paths_are_not_charged_tokens() -> None:
    assert estimate_tokens({"input": "a" * 100}, "/v1/rerank") == 0
