"""JSON schemas in a request (``response_format``, tool parameters) are bounded when the request
is read: past a limit they are a 400 naming the field, never a grammar that exhausts memory, a
stack overflow in the validator, or a server error."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiplatform.api.chat import (
    ChatCompletionRequest,
    ChatMessage,
    FunctionDefinition,
    JsonSchemaFormat,
    ResponseFormat,
    Tool,
)
from aiplatform.engines.llm import schema_limits
from aiplatform.engines.llm.fake import FakeLLM
from aiplatform.engines.llm.generation import SamplingParams
from aiplatform.engines.llm.requests import json_format
from aiplatform.engines.llm.schema_limits import (
    MAX_ENUM_VALUES,
    MAX_GRAMMAR_BYTES,
    MAX_NAME_LENGTH,
    MAX_OBJECT_PROPERTIES,
    MAX_PATTERN_LENGTH,
    MAX_REPETITION,
    MAX_SCHEMA_DEPTH,
    MAX_SMALLEST_OUTPUT,
)
from aiplatform.engines.llm.tools import plan_tools
from aiplatform.errors import InvalidRequestError

HUGE = 10**9


def chat(schema: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        messages=[ChatMessage(role="user", content="hi")],
        response_format=ResponseFormat(
            type="json_schema", json_schema=JsonSchemaFormat(json_schema=schema)
        ),
    )


def tool(name: str, parameters: dict[str, Any] | None) -> Tool:
    return Tool(function=FunctionDefinition(name=name, parameters=parameters))


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def refusal(schema: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        json_format(chat(schema))
    return caught.value


# -- each limit ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "minItems": HUGE},
        {"type": "array", "items": {"type": "integer"}, "maxItems": HUGE},
        {"type": "string", "minLength": HUGE},
        {"type": "string", "maxLength": MAX_REPETITION + 1},
        {"type": "object", "minProperties": HUGE},
        {"type": "string", "pattern": "^a{1000000000}$"},
        {"type": "string", "pattern": "^a{2," + "9" * 5000 + "}$"},
        {"type": "string", "pattern": "^" + "a" * (MAX_PATTERN_LENGTH + 1) + "$"},
        nested(100),
        nested(MAX_SCHEMA_DEPTH),
        {"enum": list(range(MAX_ENUM_VALUES + 1))},
        {"properties": {f"p{i}": {"type": "string"} for i in range(MAX_OBJECT_PROPERTIES + 1)}},
        {"properties": {"p" * (MAX_NAME_LENGTH + 1): {"type": "string"}}},
        # each array within the limits, but the smallest output multiplies through them
        {"type": "array", "minItems": 200, "items": {"type": "array", "minItems": 200}},
        {"type": "array", "minItems": 10, "items": {"type": "string", "minLength": 2000}},
        # each object within the limits, but together past the total
        {
            "type": "object",
            "properties": {
                f"o{j}": {"properties": {f"p{i}": {"type": "string"} for i in range(120)}}
                for j in range(9)
            },
        },
        # every count within the limits, the grammar past its bound
        {"anyOf": [{"type": "array", "maxItems": MAX_REPETITION} for _ in range(8)]},
    ],
    ids=[
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "pattern-count",
        "pattern-count-of-5000-digits",
        "pattern-length",
        "nested-100",
        "nested-past-the-depth",
        "enum",
        "properties-of-one-object",
        "property-name",
        "smallest-output-of-nested-arrays",
        "smallest-output-of-strings",
        "properties-in-all",
        "grammar",
    ],
)
def test_a_schema_past_a_limit_is_a_400_naming_response_format(schema: dict[str, Any]) -> None:
    error = refusal(schema)
    assert error.status_code == 400
    assert (error.param, error.code) == ("response_format", "schema_too_large")
    assert "response_format" in error.message


def test_the_largest_accepted_shapes_are_accepted() -> None:
    """Each limit is a bound, not a ban: at the limit the schema is served."""
    for schema in (
        {"type": "array", "items": {"type": "integer"}, "minItems": MAX_SMALLEST_OUTPUT},
        {"type": "string", "maxLength": MAX_REPETITION},
        nested((MAX_SCHEMA_DEPTH - 2) // 2),
        {"enum": list(range(MAX_ENUM_VALUES))},
        {"properties": {f"p{i}": {"type": "string"} for i in range(MAX_OBJECT_PROPERTIES)}},
    ):
        assert json_format(chat(schema)) == (True, schema)


def test_a_tool_past_a_limit_is_named_by_its_index() -> None:
    tools = [tool("ok", {"type": "object"}), tool("big", {"type": "array", "minItems": HUGE})]
    with pytest.raises(InvalidRequestError) as caught:
        plan_tools(tools, "auto")
    assert caught.value.param == "tools[1].function.parameters"
    assert caught.value.code == "schema_too_large"


def test_deep_tool_parameters_are_a_400_not_a_recursion_error() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan_tools([tool("deep", nested(100))], "required")
    assert caught.value.param == "tools[0].function.parameters"


def test_tools_held_by_one_grammar_are_bounded_together() -> None:
    """A required call holds every tool in one grammar: each tool fits, all of them do not."""
    parameters = {
        "type": "object",
        "properties": {"xs": {"type": "array", "items": {"type": "string"}, "maxItems": 9000}},
    }
    tools = [tool(f"f{i}", parameters) for i in range(8)]
    assert plan_tools(tools, "auto") is not None
    with pytest.raises(InvalidRequestError) as caught:
        plan_tools(tools, "required")
    assert (caught.value.param, caught.value.code) == ("tools", "schema_too_large")


def test_data_inside_enum_and_default_is_not_read_as_a_schema() -> None:
    schema = {"type": "object", "default": {"minItems": HUGE}, "enum": [{"maxLength": HUGE}]}
    assert json_format(chat(schema)) == (True, schema)


def test_a_property_named_like_a_data_keyword_is_still_a_schema() -> None:
    schema = {"type": "object", "properties": {"enum": {"type": "array", "minItems": HUGE}}}
    assert refusal(schema).param == "response_format"


def test_the_grammar_of_an_accepted_schema_is_refused_past_the_bound_on_llama_cpp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("llama_cpp")
    from aiplatform.engines.llm import gguf

    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 100}
    params = SamplingParams(max_tokens=8, json_mode=True, json_schema=schema)
    assert gguf.grammar_text(params)
    monkeypatch.setattr(gguf, "MAX_GRAMMAR_BYTES", 200)
    with pytest.raises(InvalidRequestError) as caught:
        gguf.grammar_text(params)
    assert caught.value.code == "schema_too_large"


# -- generated schemas ---------------------------------------------------------------------------

COUNTS = st.sampled_from([0, 1, 2, 50, 999, MAX_REPETITION, MAX_REPETITION + 1, HUGE, 1.5e300])
NAMES = st.sampled_from(["a", "b", "long" * 40, "x" * (MAX_NAME_LENGTH + 1), "é ☃", "minItems"])
PATTERNS = st.sampled_from(
    ["^[a-z]+$", "^a{3}$", "^(ab|cd){1,999}$", "^x{10001}$", "^(x{100}){100}$", "^[", "^a{,3}$"]
)
LEAVES = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean"])}),
    st.fixed_dictionaries(
        {"type": st.just("string")},
        optional={"minLength": COUNTS, "maxLength": COUNTS, "pattern": PATTERNS},
    ),
    st.fixed_dictionaries({"enum": st.lists(st.integers() | st.text(max_size=5), max_size=40)}),
    st.fixed_dictionaries({"const": st.text(max_size=20)}),
    st.just({}),
    st.just(True),
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("array"), "items": inner},
            optional={"minItems": COUNTS, "maxItems": COUNTS},
        ),
        st.fixed_dictionaries(
            {"type": st.just("object"), "properties": st.dictionaries(NAMES, inner, max_size=4)},
            optional={
                "required": st.lists(NAMES, max_size=3),
                "minProperties": COUNTS,
                "additionalProperties": st.booleans() | inner,
            },
        ),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries(
            {"allOf": st.lists(inner, min_size=1, max_size=2)}, optional={"type": st.just("object")}
        ),
        # one long chain: depth past the limit
        st.integers(1, 60).map(nested),
        st.integers(1, 400).map(
            lambda n: {"properties": {f"p{i}": {"type": "string"} for i in range(n)}}
        ),
    )


SCHEMAS = st.recursive(LEAVES, _containers, max_leaves=10).filter(lambda s: isinstance(s, dict))
PROPERTY = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@PROPERTY
@given(schema=SCHEMAS)
def test_a_generated_schema_is_accepted_within_the_bound_or_refused_naming_the_field(
    schema: dict[str, Any],
) -> None:
    try:
        json_format(chat(schema))
    except InvalidRequestError as refused:
        error: InvalidRequestError | None = refused
    else:
        error = None
    if error is not None:
        assert error.param == "response_format"
        return
    size = schema_limits.measure(schema)
    assert size.grammar_bytes <= MAX_GRAMMAR_BYTES
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    try:
        grammar = llama_grammar.json_schema_to_gbnf(json.dumps(schema))
    except Exception:  # a shape llama.cpp cannot hold: the gguf backend's own 400
        return
    assert len(grammar) <= size.grammar_bytes, "the estimate is below the real grammar"


def assert_names_a_tool(error: InvalidRequestError) -> None:
    assert error.param in {"tools", *(f"tools[{i}].function.parameters" for i in range(3))}


@PROPERTY
@given(
    schemas=st.lists(SCHEMAS, min_size=1, max_size=3), choice=st.sampled_from(["auto", "required"])
)
def test_generated_tool_parameters_are_accepted_or_refused_naming_the_tool(
    schemas: list[dict[str, Any]], choice: Any
) -> None:
    tools = [tool(f"f{i}", schema) for i, schema in enumerate(schemas)]
    try:
        plan = plan_tools(tools, choice)
    except InvalidRequestError as refused:
        assert_names_a_tool(refused)
        return
    assert plan is not None
    if plan.schema is None:
        return
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    try:
        grammar = llama_grammar.json_schema_to_gbnf(json.dumps(plan.schema))
    except Exception:  # a shape llama.cpp cannot hold: the gguf backend's own 400
        return
    assert len(grammar) <= MAX_GRAMMAR_BYTES


@PROPERTY
@given(schema=SCHEMAS)
def test_the_fake_backend_answers_every_accepted_schema(schema: dict[str, Any]) -> None:
    """The check sits before any backend: what it accepts, the fake serves (as JSON)."""
    try:
        json_format(chat(schema))
    except InvalidRequestError:
        return
    fake = FakeLLM("fake")
    fake.load()
    params = SamplingParams(max_tokens=None, json_mode=True, json_schema=schema)
    pieces = fake.generate(fake.prepare_text("hi"), params, threading.Event())
    json.loads("".join(piece.text for piece in pieces))
