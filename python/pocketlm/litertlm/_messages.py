"""litert_lm's message classes (Role, ToolCall, Content and its kinds,
Contents, Message) with its names, fields and JSON form: a Message is also the
dict LiteRT-LM's C API exchanges ({"role": ..., "content": [parts]}), and the
two views stay in step whichever is changed. No model or template here.
"""

from __future__ import annotations

import abc
import base64
import collections.abc
import dataclasses
import enum
import json
from typing import Any, Mapping, Sequence


class Role(enum.Enum):
    """The role of a message in a conversation."""

    SYSTEM = "system"
    USER = "user"
    MODEL = "assistant"
    TOOL = "tool"


@dataclasses.dataclass
class ToolCall:
    """A tool call the model made."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None
    type: str = "function"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "function": {"name": self.name, "arguments": self.arguments}}
        if self.id is not None:
            out["id"] = self.id
        return out


class Content(abc.ABC):
    """One part of a message's content."""

    Text: type[Text]
    ImageBytes: type[ImageBytes]
    ImageFile: type[ImageFile]
    AudioBytes: type[AudioBytes]
    AudioFile: type[AudioFile]
    ToolResponse: type[ToolResponse]

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclasses.dataclass
class Text(Content):
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass
class ImageBytes(Content):
    bytes: bytes

    def to_json(self) -> dict[str, Any]:
        return {"type": "image", "blob": base64.b64encode(self.bytes).decode("utf-8")}


@dataclasses.dataclass
class ImageFile(Content):
    absolute_path: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "image", "path": self.absolute_path}


@dataclasses.dataclass
class AudioBytes(Content):
    bytes: bytes

    def to_json(self) -> dict[str, Any]:
        return {"type": "audio", "blob": base64.b64encode(self.bytes).decode("utf-8")}


@dataclasses.dataclass
class AudioFile(Content):
    absolute_path: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "audio", "path": self.absolute_path}


@dataclasses.dataclass
class ToolResponse(Content):
    name: str
    response: Any

    def to_json(self) -> dict[str, Any]:
        return {"type": "tool_response", "name": self.name, "response": self.response}


Content.Text, Content.ImageBytes, Content.ImageFile = Text, ImageBytes, ImageFile
Content.AudioBytes, Content.AudioFile, Content.ToolResponse = AudioBytes, AudioFile, ToolResponse


class Contents(list):
    """The list of Content of a message."""

    def __init__(self, contents: Sequence[Content] = ()):
        super().__init__(contents)

    @property
    def contents(self) -> list[Content]:
        return self

    def to_json(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in self]

    def __str__(self) -> str:
        return "".join(str(c) for c in self if isinstance(c, Text))

    def __repr__(self) -> str:
        return f"Contents({super().__repr__()})"

    @classmethod
    def empty(cls) -> Contents:
        return cls([])

    @classmethod
    def of(cls, *args: str | Content | Sequence[Content]) -> Contents:
        """Contents from text, Content, or a list of Content."""
        if len(args) == 1:
            (arg,) = args
            if isinstance(arg, str):
                return cls([Text(arg)])
            if isinstance(arg, Content):
                return cls([arg])
            if isinstance(arg, collections.abc.Sequence) and not isinstance(arg, (str, bytes)):
                return cls(arg)
        out = []
        for arg in args:
            if isinstance(arg, str):
                out.append(Text(arg))
            elif isinstance(arg, Content):
                out.append(arg)
            else:
                raise TypeError(f"Unsupported type in Contents.of: {type(arg)}")
        return cls(out)


_DOMAIN = ("role", "contents", "tool_calls", "channels", "_has_role", "_raw_content", "_extra_fields")


def _parse(data: Mapping[str, Any]):
    """(role, contents, tool_calls, channels, has_role, raw_content, extra_fields) of a JSON message."""
    role_str = data.get("role", "assistant")
    try:
        role = Role(role_str)
    except ValueError:
        role = Role.MODEL if role_str == "model" else Role.USER
    content = data.get("content")
    parts: list[Content] = []
    if isinstance(content, str):
        parts.append(Text(content))
    elif isinstance(content, collections.abc.Sequence) and not isinstance(content, (str, bytes)):
        for item in content:
            if isinstance(item, str):
                parts.append(Text(item))
            elif isinstance(item, collections.abc.Mapping):
                kind = item.get("type")
                if kind == "text":
                    parts.append(Text(item.get("text", "")))
                elif kind in ("image", "audio"):
                    file_cls, bytes_cls = (ImageFile, ImageBytes) if kind == "image" else (AudioFile, AudioBytes)
                    if "path" in item:
                        parts.append(file_cls(item["path"]))
                    elif "blob" in item:
                        parts.append(bytes_cls(base64.b64decode(item["blob"])))
                elif kind == "tool_response":
                    parts.append(ToolResponse(name=item.get("name", ""), response=item.get("response")))
    contents = Contents(parts)
    raw = content if "content" in data and (contents.to_json() != content or not parts) else None
    calls: list[ToolCall] = []
    tc_data = data.get("tool_calls", [])
    if isinstance(tc_data, collections.abc.Sequence) and not isinstance(tc_data, (str, bytes)):
        for tc in tc_data:
            if not isinstance(tc, collections.abc.Mapping):
                continue
            fn = tc.get("function", tc)
            if not isinstance(fn, collections.abc.Mapping):
                continue
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    args = {}
            calls.append(ToolCall(name=fn.get("name", ""), arguments=dict(args) if isinstance(
                args, collections.abc.Mapping) else {}, id=tc.get("id"), type=tc.get("type", "function")))
    ch = data.get("channels")
    channels = dict(ch) if isinstance(ch, collections.abc.Mapping) else None
    extra = {k: v for k, v in data.items() if k not in ("role", "content", "tool_calls", "channels")}
    return role, contents, calls, channels, "role" in data, raw, extra


class Message(dict):
    """A message of a conversation: the attributes role, contents, tool_calls
    and channels, and the same message as a JSON dict."""

    def __init__(self, role: Role, contents: Contents | None = None, tool_calls: Sequence[ToolCall] = (),
                 channels: Mapping[str, str] | None = None):
        super().__init__()
        for name, value in (("_has_role", True), ("_raw_content", None), ("_extra_fields", {}), ("role", role),
                            ("contents", contents if contents is not None else Contents.empty()),
                            ("tool_calls", list(tool_calls)), ("channels", dict(channels or {}))):
            object.__setattr__(self, name, value)
        self._sync_dict()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "contents":
            object.__setattr__(self, "_raw_content", None)
        elif name == "role":
            object.__setattr__(self, "_has_role", True)
        object.__setattr__(self, name, value)
        if name in _DOMAIN:
            self._sync_dict()

    def _from_dict(self) -> None:
        role, contents, calls, channels, has_role, raw, extra = _parse(dict(self))
        for name, value in (("role", role), ("contents", contents), ("tool_calls", calls),
                            ("channels", channels or {}), ("_has_role", has_role), ("_raw_content", raw),
                            ("_extra_fields", extra)):
            object.__setattr__(self, name, value)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._from_dict()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._from_dict()

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self._from_dict()

    def pop(self, key, *args):
        value = super().pop(key, *args)
        self._from_dict()
        return value

    def clear(self):
        super().clear()
        self._from_dict()

    def setdefault(self, key, default=None):
        value = super().setdefault(key, default)
        self._from_dict()
        return value

    def _json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._has_role:
            out["role"] = self.role.value if isinstance(self.role, Role) else self.role
        if self._raw_content is not None:
            out["content"] = self._raw_content
        elif self.contents:
            out["content"] = self.contents.to_json()
        if self.tool_calls:
            out["tool_calls"] = [tc.to_json() for tc in self.tool_calls]
        if self.channels:
            out["channels"] = self.channels
        out.update(self._extra_fields)
        return out

    def _sync_dict(self) -> None:
        new = self._json()
        for k in list(super().keys()):
            if k not in new:
                super().__delitem__(k)
        super().update(new)

    def to_json(self) -> dict[str, Any]:
        self._sync_dict()
        return dict(super().items())

    def __str__(self) -> str:
        return str(self.contents)

    def __repr__(self) -> str:
        return (f"Message(role={self.role!r}, contents={self.contents!r}, tool_calls={self.tool_calls!r}, "
                f"channels={self.channels!r})")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        role, contents, calls, channels, has_role, raw, extra = _parse(data)
        msg = cls(role=role, contents=contents, tool_calls=calls, channels=channels)
        for name, value in (("_has_role", has_role), ("_raw_content", raw), ("_extra_fields", extra)):
            object.__setattr__(msg, name, value)
        msg._sync_dict()
        return msg

    @classmethod
    def system(cls, text_or_contents: str | Contents) -> Message:
        return cls(Role.SYSTEM, text_or_contents if isinstance(text_or_contents, Contents)
                   else Contents.of(text_or_contents))

    @classmethod
    def user(cls, text_or_contents: str | Contents) -> Message:
        return cls(Role.USER, text_or_contents if isinstance(text_or_contents, Contents)
                   else Contents.of(text_or_contents))

    @classmethod
    def model(cls, contents: Contents | None = None, tool_calls: Sequence[ToolCall] = (),
              channels: Mapping[str, str] | None = None) -> Message:
        return cls(Role.MODEL, contents, tool_calls, channels)

    @classmethod
    def tool(cls, contents: Contents) -> Message:
        return cls(Role.TOOL, contents)


def normalize_message(message) -> Mapping[str, Any]:
    """str and Contents become a user message; a Message its JSON; a mapping stays."""
    if isinstance(message, str):
        return {"role": "user", "content": message}
    if isinstance(message, Contents):
        return {"role": "user", "content": message.to_json()}
    if isinstance(message, Message):
        return message.to_json()
    if isinstance(message, collections.abc.Mapping):
        return message
    raise TypeError(f"Unsupported message type: {type(message)}")
