"""Named chat templates, and the GGUF without a template that needs one (Gemma 3 base)."""

from __future__ import annotations

import threading

import pytest

from aiplatform.engines.llm.generation import SamplingParams
from aiplatform.engines.llm.settings import LLMModelSettings
from aiplatform.engines.llm.templates import (
    NAMED_TEMPLATES,
    ChatTemplate,
    RenderedPrompt,
    family_template,
    render_named,
)
from aiplatform.errors import InvalidRequestError

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Name a colour."},
]


def test_gemma_folds_system_into_first_user_turn() -> None:
    rendered = render_named("gemma", CONVERSATION)
    assert rendered.prompt == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nName a colour.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert rendered.stop == ("<end_of_turn>",)


@pytest.mark.parametrize("name", sorted(NAMED_TEMPLATES))
def test_every_template_ends_at_the_assistant_turn(name: str) -> None:
    rendered = render_named(name, CONVERSATION)
    assert "Name a colour." in rendered.prompt
    assert rendered.prompt.rstrip().endswith(
        ("model", "assistant<|end_header_id|>", "[/INST]", "<|im_start|>assistant")
    )
    assert rendered.stop


def test_unknown_template_is_named() -> None:
    with pytest.raises(ValueError, match="unknown chat template 'vicuna'"):
        render_named("vicuna", CONVERSATION)
    assert family_template("gemma3") == "gemma"
    assert family_template("llama") is None  # llama-2 or llama-3: never guessed


@pytest.mark.slow
def test_gemma3_base_gguf_chats_through_the_named_template() -> None:
    from aiplatform.engines.llm.gguf import LlamaCppModel

    model = LlamaCppModel(
        LLMModelSettings(name="gemma", path="shipped:gemma3-270m", context_length=512, slots=1)
    )
    model.load()
    try:
        prompt = model.prepare_chat([{"role": "user", "content": "Say hello."}])
        assert "<start_of_turn>user\nSay hello.<end_of_turn>" in prompt.text
        assert prompt.stop == ("<end_of_turn>",)
        pieces = list(
            model.generate(
                prompt, SamplingParams(max_tokens=12, temperature=0.0, seed=1), threading.Event()
            )
        )
        assert "".join(piece.text for piece in pieces).strip()
        assert sum(piece.tokens for piece in pieces) <= 12
    finally:
        model.unload()


def test_template_choice_order_and_refusal() -> None:
    def own(messages: object) -> RenderedPrompt:
        return RenderedPrompt("OWN", ())

    assert (
        ChatTemplate("m", configured="chatml", own=own, family="gemma3")
        .render(CONVERSATION)
        .prompt.startswith("<|im_start|>system")
    )
    assert (
        ChatTemplate("m", configured=None, own=own, family="gemma3").render(CONVERSATION).prompt
        == "OWN"
    )
    assert (
        ChatTemplate("m", configured=None, own=None, family="gemma3")
        .render(CONVERSATION)
        .prompt.startswith("<bos><start_of_turn>user")
    )
    unknown_family = ChatTemplate("m", configured=None, own=None, family="llama")
    with pytest.raises(InvalidRequestError, match="has no chat template"):
        unknown_family.render(CONVERSATION)
    with pytest.raises(ValueError, match="unknown chat template 'vicuna'"):
        ChatTemplate("m", configured="vicuna", own=own, family=None)
