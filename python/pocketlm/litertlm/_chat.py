"""A conversation's text as LiteRT-LM makes it: the Jinja chat template
rendered by Minijinja with LiteRT-LM's inputs (messages whose content is a
list of parts, tools, enable_thinking, add_generation_prompt, the extra
context; no bos_token: the runtime prepends the start token itself), each
turn the rendered text the previous render does not hold yet; and the tool
calls of each model family's format read back from a response.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


def as_template_message(msg) -> dict[str, Any]:
    """A message as the template sees it: a known role, content as a list of parts."""
    if not hasattr(msg, "get"):
        raise TypeError(f"a message is a mapping with 'role' and 'content', not {type(msg).__name__}")
    role = msg.get("role", "user")
    if role == "model":
        role = "assistant"
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} in message {dict(msg)!r}: a role is one of {', '.join(ROLES)}")
    out = dict(msg)
    out["role"] = role
    content = msg.get("content", [])
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    elif content is None:
        content = []
    out["content"] = [{"type": "text", "text": c} if isinstance(c, str) else dict(c) for c in content]
    for part in out["content"]:
        if part.get("type") in ("image", "audio"):
            raise ValueError(f"a {part['type']} part: pocketlm runs text models only (message {dict(msg)!r})")
    return out


class Renderer:
    """A chat template compiled once; render() raises RuntimeError with
    LiteRT-LM's message ("Failed to apply template: ...") when Minijinja fails."""

    def __init__(self, template: str):
        try:
            import minijinja
        except ImportError as e:
            raise RuntimeError("LiteRT-LM renders chat templates with Minijinja: pip install minijinja") from e

        def raise_exception(message):
            raise minijinja.TemplateError(str(message))

        self.env = minijinja.Environment(pycompat=True)
        self.env.add_function("raise_exception", raise_exception)
        self.env.add_filter("tojson", lambda v, indent=None: json.dumps(v, indent=indent, ensure_ascii=False))
        self.TemplateError = minijinja.TemplateError
        try:
            self.env.add_template("template", template)
        except minijinja.TemplateError as e:
            raise RuntimeError(f"Failed to apply template: {str(e).splitlines()[0]}") from None

    def render(self, messages, tools, add_generation_prompt: bool, extra_context, enable_thinking=None) -> str:
        ctx = dict(extra_context or {})
        ctx.update(messages=messages, add_generation_prompt=add_generation_prompt)
        if tools:
            ctx["tools"] = tools
        if enable_thinking is not None:
            ctx["enable_thinking"] = enable_thinking
        try:
            return self.env.render_template("template", **ctx)
        except self.TemplateError as e:
            raise RuntimeError(f"Failed to apply template: {str(e).splitlines()[0]}") from None


# -- tool calls ------------------------------------------------------------------------------------------------

FAMILIES = ("gemma3", "qwen", "phi4", "llama3")


def tool_family(template: str | None) -> str | None:
    """The tool-call format a chat template's family writes, or None."""
    t = template or ""
    if "<|tool_call|>" in t or "<|tool|>" in t:
        return "phi4"
    if "<tool_call>" in t:
        return "qwen"
    if "<|start_header_id|>" in t:
        return "llama3"
    if "<start_of_turn>" in t:
        return "gemma3"
    return None


def _call(name, args, raw) -> dict[str, Any]:
    if not isinstance(name, str) or not isinstance(args, dict):
        raise ValueError(f"a tool call needs a name and an object of arguments, got {raw!r}")
    return {"type": "function", "function": {"name": name, "arguments": args}}


def _json_calls(text: str) -> list[dict]:
    data = json.loads(text)
    for item in data if isinstance(data, list) else [data]:
        if not isinstance(item, dict):
            raise ValueError(f"a tool call is a JSON object, got {item!r}")
    return [_call(i.get("name"), i.get("arguments", i.get("parameters", {})), i)
            for i in (data if isinstance(data, list) else [data])]


def _python_calls(code: str) -> list[dict]:
    out = []
    for node in ast.parse(code.strip(), mode="exec").body:
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)):
            raise ValueError(f"a tool_code block holds function calls, got {ast.unparse(node)!r}")
        call = node.value
        if call.args:
            raise ValueError(f"tool call {call.func.id}: arguments are given by name, got {ast.unparse(call)!r}")
        out.append(_call(call.func.id, {k.arg: ast.literal_eval(k.value) for k in call.keywords}, code))
    return out


_PATTERNS = {
    "qwen": re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S),
    "phi4": re.compile(r"<\|tool_call\|>\s*(.*?)\s*<\|/tool_call\|>", re.S),
    "gemma3": re.compile(r"```tool_code\s*\n(.*?)\n\s*```", re.S),
}


def parse_tool_calls(text: str, family: str | None) -> tuple[str, list[dict]]:
    """(the text outside tool calls, the calls) of a response in the family's format:
    Gemma 3 ```tool_code blocks of Python calls, Qwen <tool_call>{json}</tool_call>,
    Phi-4 <|tool_call|>[json]<|/tool_call|>, Llama 3.x a JSON object {"name", "parameters"}
    (after <|python_tag|> or as the whole response). A call that is malformed
    stays text."""
    if family is None:
        return text, []
    if family == "llama3":
        body = text.split("<|python_tag|>", 1)[1] if "<|python_tag|>" in text else text
        stripped = body.strip()
        if stripped.startswith("{") or stripped.startswith("["):
            try:
                calls = _json_calls(stripped)
                if all(c["function"]["name"] for c in calls):
                    return text[: len(text) - len(body)].replace("<|python_tag|>", ""), calls
            except (ValueError, json.JSONDecodeError):
                pass
        return text, []
    calls, rest, end = [], [], 0
    for m in _PATTERNS[family].finditer(text):
        try:
            found = _python_calls(m.group(1)) if family == "gemma3" else _json_calls(m.group(1))
        except (ValueError, SyntaxError, json.JSONDecodeError):
            continue
        calls += found
        rest.append(text[end:m.start()])
        end = m.end()
    rest.append(text[end:])
    return ("".join(rest) if calls else text), calls


# where a family's tool call begins in a response (Llama 3.x: a response that opens with JSON, or this tag)
OPENINGS = {"qwen": "<tool_call>", "phi4": "<|tool_call|>", "gemma3": "```tool_code", "llama3": "<|python_tag|>"}


class ToolCallStream:
    """A turn's text as it streams, as LiteRT-LM streams it when tools are set: text is passed on as it comes;
    from where a tool call may begin (the family's opening, or a tail that could still become one) it is held
    until the turn ends, then given as text if no call parsed from it. emit gets str pieces."""

    def __init__(self, family: str | None, emit):
        self.family, self.emit = family, emit
        self.opening = OPENINGS.get(family or "", "")
        self.sent, self.held, self.holding = "", "", False

    def feed(self, piece: str) -> None:
        if not self.opening:
            self.emit(piece)
            self.sent += piece
            return
        self.held += piece
        if not self.holding:
            start = self.sent + self.held
            if self.family == "llama3" and start.lstrip()[:1] in ("{", "["):
                self.holding = True  # Llama 3.x's call is the whole response, as JSON
            elif self.opening in self.held:
                self.holding = True
            elif self.family == "llama3" and not start.strip():
                return  # leading whitespace: the JSON may still come
        if self.holding:
            return
        keep = 0  # the longest tail that is a beginning of the opening
        for n in range(min(len(self.held), len(self.opening) - 1), 0, -1):
            if self.opening.startswith(self.held[-n:]):
                keep = n
                break
        out, self.held = self.held[: len(self.held) - keep], self.held[len(self.held) - keep:]
        if out:
            self.emit(out)
            self.sent += out

    def finish(self, answer: str, calls: list) -> None:
        """The turn has ended: answer is its whole text, calls what was parsed from it. What is held and
        is not a call is given now."""
        if not self.held:
            return
        if calls:
            rest, _ = parse_tool_calls(answer, self.family)
            tail = rest[len(self.sent):] if rest.startswith(self.sent) else ""
        else:
            tail = self.held
        self.held = ""
        if tail:
            self.emit(tail)
            self.sent += tail


def tool_call_grammar(family: str, tools: list[dict]) -> str:
    """A Lark grammar (llguidance's dialect) of one call, in the family's format, to one of tools
    with arguments valid against its parameters schema."""
    if family not in FAMILIES:
        raise ValueError(f"tool-call format {family!r}: one of {', '.join(FAMILIES)}")
    if not tools:
        raise ValueError("a tool-call grammar needs at least one tool")
    alts = []
    for t in tools:
        fn = t.get("function", t)
        params = fn.get("parameters") or {"type": "object"}
        key = "parameters" if family == "llama3" else "arguments"
        if family == "gemma3":
            props = params.get("properties", {})
            names = list(props)
            if not names:
                alts.append(f'"{fn["name"]}()"')
                continue
            parts = ' ", " '.join(f'"{n}=" %json {json.dumps(dict(props[n], **{"x-guidance": {"whitespace_flexible": False}}))}'
                                  for n in names)
            alts.append(f'"{fn["name"]}(" {parts} ")"')
            continue
        schema = {"type": "object", "properties": {"name": {"const": fn["name"]}, key: params},
                  "required": ["name", key], "additionalProperties": False,
                  "x-guidance": {"whitespace_flexible": False}}  # a call as the family writes it: compact JSON
        alts.append(f"%json {json.dumps(schema)}")
    call = " | ".join(f"({a})" for a in alts)
    opening, closing = {"qwen": ('"<tool_call>\\n"', '"\\n</tool_call>"'),
                        "phi4": ('"<|tool_call|>["', '"]<|/tool_call|>"'),
                        "gemma3": ('"```tool_code\\n"', '"\\n```"'),
                        "llama3": ("", "")}[family]
    return f"start: {opening} call {closing}\ncall: {call}\n"
