"""Builders for the task API's option classes, in the shape of MediaPipe's
AutoValue builders: `X.builder().setFoo(..).build()`, `x.toBuilder()`, and
camelCase accessors `x.foo()` next to the Python fields `x.foo`.

The option classes themselves are frozen dataclasses with snake_case fields
(the Pythonic keyword constructor) that validate in __post_init__, so a
builder's build() and a direct construction check the same things. Where the
Android name is one word (temperature) the field is the accessor: Kotlin's
`options.temperature()` reads `options.temperature` here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(w[:1].upper() + w[1:] for w in rest)


class OptionsBuilder:
    """Collects option values; build() makes the (validated) options object."""

    _target: type

    def __init__(self, values: dict | None = None):
        self._values = dict(values or {})

    def build(self):
        return self._target(**self._values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._values})"


def _setter(field_name: str, public: str):
    def set_value(self, value):
        self._values[field_name] = value
        return self

    set_value.__name__ = f"set{public[:1].upper()}{public[1:]}"
    set_value.__doc__ = f"Sets {public}; returns the builder."
    return set_value


def _accessor(field_name: str, public: str):
    def get_value(self):
        return getattr(self, field_name)

    get_value.__name__ = public
    get_value.__doc__ = f"The {public} option."
    return get_value


def with_builder(aliases: dict[str, str] | None = None):
    """Class decorator for a frozen options dataclass: adds `builder()`,
    `toBuilder()`, a camelCase accessor per field and a Builder class with a
    camelCase setter per field. aliases maps extra public names to fields
    (e.g. maxTopK -> top_k)."""

    def decorate(cls):
        builder_cls = type(f"{cls.__name__}Builder", (OptionsBuilder,), {"_target": cls, "__module__": cls.__module__})
        names = {camel(f.name): f.name for f in dataclasses.fields(cls)}
        names.update(aliases or {})
        for public, field_name in names.items():
            setter = _setter(field_name, public)
            setattr(builder_cls, setter.__name__, setter)
            if not hasattr(cls, public):
                setattr(cls, public, _accessor(field_name, public))
        cls.Builder = builder_cls
        cls.builder = staticmethod(lambda: builder_cls())
        cls.builder.__doc__ = f"A builder for {cls.__name__}, holding the defaults."
        cls.toBuilder = lambda self: builder_cls({f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})
        return cls

    return decorate


# -- validation shared by the option classes ---------------------------------------


def check_int(name: str, value, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_float(name: str, value, minimum: float, maximum: float | None = None, open_min: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < minimum or (open_min and value == minimum) or (maximum is not None and value > maximum):
        lo = f"> {minimum}" if open_min else f">= {minimum}"
        raise ValueError(f"{name} must be {lo}" + (f" and <= {maximum}" if maximum is not None else "") +
                         f", got {value}")
    return float(value)


def check_path(name: str, value, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise ValueError(f"{name} must be set")
        return None
    if not isinstance(value, (str, Path)):
        raise ValueError(f"{name} must be a path, got {value!r}")
    if not Path(value).exists():
        raise ValueError(f"{name} {str(value)!r} does not exist")
    return str(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(name: str, value) -> str:
    """value itself if it is text every engine can encode; else an error naming
    name and, for a surrogate, its index and code point. A str may hold lone
    UTF-16 surrogates (a broken Java or JavaScript string, a 'surrogateescape'
    decode), which no UTF-8 encoder takes: refused here, at the API, rather
    than as a UnicodeEncodeError from inside the tokenizer."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be text (str), not {type(value).__name__}")
    if value.isascii():
        return value
    bad = _SURROGATE.search(value)
    if bad is None:
        return value
    i = bad.start()
    c = ord(value[i])
    low = ord(value[i + 1]) if i + 1 < len(value) else 0
    if 0xD800 <= c < 0xDC00 and 0xDC00 <= low < 0xE000:
        joined = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00)
        raise ValueError(f"{name}: surrogate pair U+{c:04X} U+{low:04X} at index {i} is not valid text: a Python str "
                         f"holds U+{joined:04X} as one character (join UTF-16 halves with "
                         f".encode('utf-16', 'surrogatepass').decode('utf-16'))")
    raise ValueError(f"{name}: lone surrogate U+{c:04X} at index {i} is not valid text (a broken UTF-16 string?)")


def check_callable(name: str, value) -> None:
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be callable, got {value!r}")
