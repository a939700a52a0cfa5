"""pocketlm's own additions to the litert_lm API, kept apart from the mirrored
names: a response constrained to a model family's tool-call format (so a tiny
or untrained model always produces a call that parses), and the format family
of a conversation's chat template."""

from __future__ import annotations

from . import _chat
from ._constraint import LARK
from .interfaces import ResponseFormat, Tool
from .tools import tool_from_function


def grammar(lark: str) -> ResponseFormat:
    """A ResponseFormat of a Lark grammar in llguidance's dialect (with %json and %regex)."""
    return ResponseFormat(type=LARK, schema_or_pattern=lark)


def tool_call_format(family: str, tools) -> ResponseFormat:
    """A response that is one call, in the family's format ("gemma3", "qwen", "phi4", "llama3"), to one of
    tools (functions or Tool objects) with arguments valid against its schema. Unlike a litert_lm
    response_format it applies on turns that may call tools."""
    descs = [(t if isinstance(t, Tool) else tool_from_function(t)).get_tool_description() for t in tools]
    return grammar(_chat.tool_call_grammar(family, descs))


def tool_family(conversation) -> str | None:
    """The tool-call format the conversation's chat template writes (None: no tool calls are read)."""
    return conversation._family


FAMILIES = _chat.FAMILIES
