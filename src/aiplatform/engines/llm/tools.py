"""Function calling: how tools reach the prompt, how the answer is held to a call, and parsed.

The model is told the tools and the call format (``{"name": ..., "arguments": {...}}``) in a
system message. With ``tool_choice`` ``required`` or a named function the output is held to that
format by a JSON schema (a grammar, on llama.cpp), so the call always parses; with ``auto`` the
answer is a call only when it parses as one.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiplatform.api.chat import FunctionCall, NamedToolChoice, Tool, ToolCall
from aiplatform.engines.llm.requests import check_schema
from aiplatform.engines.llm.schema_limits import SchemaSize, check_total
from aiplatform.errors import InvalidRequestError

__all__ = ["ToolPlan", "plan_tools"]

#: Grammar bytes of the call around one tool's parameters (its name, "arguments", braces).
_CALL_BYTES = 512
#: The length of the grammar rule names a tool's parameters get inside the call's grammar
#: (``alternative-<n>-arguments-``).
_CALL_PREFIX = 32
_FENCE = re.compile(r"^\s*(?:```(?:json)?|<tool_call>)\s*|\s*(?:```|</tool_call>)\s*$")


@dataclass(frozen=True, slots=True)
class ToolPlan:
    tools: tuple[Tool, ...]
    #: JSON schema the output must follow, when a call is required.
    schema: dict[str, Any] | None

    def prompt(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The messages with the tool instructions prepended as a system message."""
        lines = [
            "You can call these functions. To call one, answer with only a JSON object "
            '{"name": <function name>, "arguments": <arguments object>}.'
        ]
        for tool in self.tools:
            function = tool.function
            spec = {
                "name": function.name,
                "description": function.description or "",
                "parameters": function.parameters or {"type": "object"},
            }
            lines.append(json.dumps(spec))
        instructions = "\n".join(lines)
        if messages and messages[0]["role"] == "system":
            first = {"role": "system", "content": f"{messages[0]['content']}\n\n{instructions}"}
            return [first, *messages[1:]]
        return [{"role": "system", "content": instructions}, *messages]

    def parse(self, text: str) -> list[ToolCall] | None:
        """The calls in ``text``, or None when it is not a call to one of the tools."""
        try:
            payload = json.loads(_FENCE.sub("", text))
        except ValueError:
            return None
        items = payload if isinstance(payload, list) else [payload]
        names = {tool.function.name for tool in self.tools}
        calls = []
        for item in items:
            if not isinstance(item, dict) or item.get("name") not in names:
                return None
            arguments = item.get("arguments", item.get("parameters", {}))
            arguments_text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            calls.append(
                ToolCall(
                    id=f"call_{uuid.uuid4().hex[:24]}",
                    function=FunctionCall(name=item["name"], arguments=arguments_text),
                )
            )
        return calls or None


def plan_tools(
    tools: Sequence[Tool] | None,
    choice: Literal["none", "auto", "required"] | NamedToolChoice | None,
) -> ToolPlan | None:
    """How this request uses its tools; None when it uses none."""
    sizes: dict[int, SchemaSize] = {}  # each tool's parameters, measured once, by id(tool)
    for index, tool in enumerate(tools or ()):
        if tool.function.parameters is not None:
            param = f"tools[{index}].function.parameters"
            sizes[id(tool)] = check_schema(tool.function.parameters, param, prefix=_CALL_PREFIX)
    if not tools:
        if choice not in (None, "none", "auto"):
            raise InvalidRequestError(
                "tool_choice asks for a tool but no tools were given.", param="tool_choice"
            )
        return None
    if choice == "none":
        return None
    if isinstance(choice, NamedToolChoice):
        chosen = [tool for tool in tools if tool.function.name == choice.function.name]
        if not chosen:
            raise InvalidRequestError(
                f"tool_choice names '{choice.function.name}', which is not among the tools.",
                param="tool_choice",
            )
        return ToolPlan(tuple(chosen), _call_schema(chosen, sizes))
    if choice == "required":
        return ToolPlan(tuple(tools), _call_schema(tools, sizes))
    return ToolPlan(tuple(tools), None)


def _call_schema(tools: Sequence[Tool], sizes: dict[int, SchemaSize]) -> dict[str, Any]:
    """The schema a required call follows; one grammar holds every tool's parameters, so
    their sizes (``sizes``, by ``id(tool)``) add up against the limits."""
    total = SchemaSize()
    for tool in tools:
        call = _CALL_BYTES + 3 * len(tool.function.name)
        total += SchemaSize(properties=2, enum_values=1, grammar_bytes=call)
        if id(tool) in sizes:
            total += sizes[id(tool)]
    check_total(total, "tools")
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool.function.name},
                "arguments": tool.function.parameters or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}
