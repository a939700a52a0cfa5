"""The checks FlatBuffers' C++ Verifier makes and the generated Python schema
code does not, for the readers of LiteRT files (litertlm_file.py,
tflite_file.py): a table's vtable inside the buffer, a vector's or string's
length inside it. The generated code reads values; this only says whether
the bytes it is about to follow are there. It reads nothing else.

Where the Python code is quietly wrong on bad bytes, without these checks:
a string past the end comes back cut short; a vector length of four billion
makes a loop over it run for hours. Anything else (an offset past the end, a
negative position) raises struct.error / TypeError inside the generated code,
which the readers turn into a ModelFileError with `reading`.
"""

from __future__ import annotations

import struct

from ..errors import ModelFileError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


class Bounds:
    """Checks against one flatbuffer (buf: the bytes its offsets are relative
    to). `where` starts every message: the file, and the section it is in."""

    def __init__(self, buf, where: str):
        self.buf = buf
        self.n = len(buf)
        self.where = where

    def fail(self, what: str, why: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: {what}: {why}")

    def _u32(self, at: int, what: str) -> int:
        if not 0 <= at <= self.n - 4:
            raise self.fail(what, f"offset {at} is outside the {self.n} bytes of the flatbuffer")
        return _U32.unpack_from(self.buf, at)[0]

    def root(self, what: str) -> int:
        """Position of the root table."""
        return self._u32(0, what)

    def table(self, obj, what: str):
        """obj (a generated table class, already Init'ed, or a flatbuffers
        Table) with its table and vtable inside the buffer; returns obj."""
        if obj is None:
            return None
        pos = _tab(obj).Pos
        if not 0 <= pos <= self.n - 4:
            raise self.fail(what, f"table at {pos} is outside the {self.n} bytes of the flatbuffer")
        vt = pos - _I32.unpack_from(self.buf, pos)[0]
        if not 0 <= vt <= self.n - 4:
            raise self.fail(what, f"the vtable of the table at {pos} is outside the flatbuffer (at {vt})")
        vt_size, t_size = _U16.unpack_from(self.buf, vt)[0], _U16.unpack_from(self.buf, vt + 2)[0]
        if vt_size < 4 or vt_size % 2 or vt + vt_size > self.n or t_size < 4 or pos + t_size > self.n:
            raise self.fail(what, f"the table at {pos} has a corrupted vtable (vtable {vt_size} bytes, "
                                  f"table {t_size} bytes, flatbuffer {self.n} bytes)")
        return obj

    def _target(self, obj, slot: int, what: str) -> int | None:
        """Where the offset field at vtable slot `slot` of obj points, or None when absent."""
        tab = _tab(obj)
        o = tab.Offset(slot)
        if o == 0:
            return None
        at = tab.Pos + o
        return at + self._u32(at, what)

    def vector(self, obj, slot: int, elem_size: int, what: str) -> int:
        """Length of the vector at `slot` (0 when absent), its elements inside the buffer."""
        start = self._target(obj, slot, what)
        if start is None:
            return 0
        count = self._u32(start, what)
        if count * elem_size > self.n - start - 4:
            raise self.fail(what, f"a vector of {count} elements at {start} runs past the end of the "
                                  f"{self.n}-byte flatbuffer")
        return count

    def string(self, obj, slot: int, what: str) -> str | None:
        """The UTF-8 string at `slot` (None when absent), inside the buffer."""
        start = self._target(obj, slot, what)
        if start is None:
            return None
        length = self._u32(start, what)
        if length > self.n - start - 4:
            raise self.fail(what, f"a string of {length} bytes at {start} runs past the end of the "
                                  f"{self.n}-byte flatbuffer")
        raw = bytes(self.buf[start + 4:start + 4 + length])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(what, f"text that is not UTF-8 ({e.reason} at byte {e.start})") from None

    def index(self, value: int, count: int, what: str, of: str) -> int:
        """value as an index into `count` things called `of`."""
        if not 0 <= value < count:
            raise self.fail(what, f"{of} {value} does not exist (there are {count})")
        return value


def _tab(obj):
    """The flatbuffers Table of a generated object (or the Table itself)."""
    return getattr(obj, "_tab", obj)
