"""tool_from_function: a Python function as a litert_lm Tool, its JSON schema
read from the signature's type hints and the docstring's Args section, as
litert_lm builds it."""

from __future__ import annotations

import collections.abc
import inspect
import re
import typing
from typing import Any

from .interfaces import Tool


def _param_descriptions(doc: str) -> dict[str, str]:
    out: dict[str, str] = {}
    in_args, current = False, None
    for line in (doc or "").split("\n"):
        stripped = line.strip()
        if stripped == "Args:":
            in_args, current = True, None
            continue
        if in_args and stripped in ("Returns:", "Raises:", "Yields:"):
            break
        if not in_args:
            continue
        m = re.match(r"\s+([\w.]+)(?:\s*\(.*?\))?:\s*(.*)", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.startswith(" " * 4):
            out[current] += " " + stripped
        elif not stripped:
            current = None
    return out


def _openapi(py_type: Any) -> dict[str, Any]:
    simple = {int: "integer", float: "number", bool: "boolean", str: "string"}
    if py_type in simple:
        return {"type": simple[py_type]}
    if typing.get_origin(py_type) in (list, collections.abc.Sequence, collections.abc.Iterable):
        args = typing.get_args(py_type)
        return {"type": "array", "items": _openapi(args[0])} if args else {"type": "array"}
    return {"type": "string"}


class _FunctionTool(Tool):
    def __init__(self, func: collections.abc.Callable[..., Any]):
        self._func = func

    def get_tool_description(self) -> dict[str, Any]:
        sig = inspect.signature(self._func)
        doc = inspect.getdoc(self._func) or ""
        described = _param_descriptions(doc)
        hints = typing.get_type_hints(self._func) if not isinstance(self._func, type) else {}
        props = {name: {**_openapi(hints.get(name, p.annotation)),
                        **({"description": described[name]} if name in described else {})}
                 for name, p in sig.parameters.items()}
        required = [name for name, p in sig.parameters.items() if p.default is inspect.Parameter.empty]
        return {"type": "function", "function": {"name": self._func.__name__,
                                                 "description": doc.split("\n")[0] if doc else "",
                                                 "parameters": {"type": "object", "properties": props,
                                                                "required": required}}}

    def execute(self, param: collections.abc.Mapping[str, Any]) -> Any:
        return self._func(**param)


def tool_from_function(func: collections.abc.Callable[..., Any]) -> Tool:
    """func as a Tool."""
    return _FunctionTool(func)
