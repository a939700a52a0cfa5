"""A GGUF reader over one memory map: header, metadata and tensor views.

Why not the ``gguf`` package's GGUFReader (which the writer side still
uses): it builds NumPy objects for every metadata item, which takes about
2.5 s for a 49k-token vocabulary, and it only reads whole files. This reader
parses the header in one pass over bytes (string arrays decoded in a loop,
numeric arrays as views), and reads a GGUF that starts at an offset of a
larger file, so a model stored uncompressed inside a .task bundle is mapped
in place rather than extracted. Tensor data is never copied: each tensor is
a view of the map.

Layout (GGUF v2/v3, little-endian): magic "GGUF", u32 version, u64 tensor
count, u64 metadata count; metadata items (string key, u32 type, value);
tensor infos (string name, u32 n_dims, u64 dims in GGML order, u32 type,
u64 offset); padding to ``general.alignment`` (32); tensor data. Every read
is bounds-checked, so a truncated, corrupted or foreign file is refused with
the file and the problem named.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from ..errors import ModelFileError
from .quant import quant_type

MAGIC = b"GGUF"
# metadata value types: struct format of the scalars, and the string/array/bool ids
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 10: "<Q", 11: "<q", 12: "<d"}
_DTYPES = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 10: "<u8", 11: "<i8", 12: "<f8"}
BOOL, STRING, ARRAY = 7, 8, 9


class GGUFError(ModelFileError):
    """A file that is not a well-formed GGUF file pocketlm can run."""


@dataclass
class TensorInfo:
    name: str
    tensor_type: int  # GGML type id
    shape: tuple[int, ...]  # GGML order: shape[0] is the row length
    offset: int  # from the start of the data section
    data: np.ndarray | None = None  # the view: [rows, row_bytes] uint8 for block types, else the values


def ggml_type_name(type_id: int) -> str:
    try:
        return gguf.GGMLQuantizationType(type_id).name
    except ValueError:
        return f"type {type_id}"


class GGUFFile:
    """fields: metadata key -> Python value (numeric arrays as NumPy views);
    tensors: list of TensorInfo with .data mapped. ``offset`` and ``length``
    locate the GGUF inside a larger file."""

    def __init__(self, path: str | Path, offset: int = 0, length: int | None = None):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            size = f.seek(0, 2)
            if size == 0:
                raise GGUFError(f"{self.path}: empty file, not a GGUF model file")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.offset = offset
        self.end = size if length is None else offset + length
        if self.end > size:
            raise GGUFError(f"{self.path}: truncated: the model needs {self.end - offset} bytes, "
                            f"the file holds {size - offset}")
        self._buf = memoryview(self._map)
        self._pos = offset
        self.fields: dict[str, object] = {}
        self.tensors: list[TensorInfo] = []
        self._parse()

    # -- reading primitives (bounds-checked) ----------------------------------------------

    def _need(self, n: int, what: str) -> int:
        if n < 0 or self._pos + n > self.end:
            raise GGUFError(f"{self.path}: truncated or corrupted: {what} runs past the end of the file "
                            f"(at byte {self._pos - self.offset} of {self.end - self.offset})")
        p = self._pos
        self._pos += n
        return p

    def _scalar(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        return struct.unpack_from(fmt, self._buf, self._need(size, what))[0]

    def _string(self, what: str) -> str:
        n = self._scalar("<Q", what)
        p = self._need(n, what)
        try:
            return str(self._buf[p:p + n], "utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"{self.path}: corrupted: {what} is not UTF-8 (at byte {p - self.offset})") from None

    def _value(self, vtype: int, what: str):
        if vtype in _SCALARS:
            return self._scalar(_SCALARS[vtype], what)
        if vtype == BOOL:
            return bool(self._scalar("<B", what))
        if vtype == STRING:
            return self._string(what)
        if vtype == ARRAY:
            etype = self._scalar("<I", what)
            count = self._scalar("<Q", what)
            if etype in _DTYPES:
                dt = np.dtype(_DTYPES[etype])
                p = self._need(count * dt.itemsize, what)
                return np.frombuffer(self._map, dtype=dt, count=count, offset=p)
            if count > self.end - self._pos:  # every element takes at least one byte
                raise GGUFError(f"{self.path}: corrupted: {what} claims {count} elements")
            if etype == STRING:
                return [self._string(what) for _ in range(count)]
            if etype == ARRAY:  # as llama.cpp (and the C reader) refuse them
                raise GGUFError(f"{self.path}: corrupted: {what} is an array of arrays")
            return [self._value(etype, what) for _ in range(count)]
        raise GGUFError(f"{self.path}: corrupted: {what} has unknown value type {vtype}")

    # -- the file ---------------------------------------------------------------------------

    def _parse(self) -> None:
        magic_at = self._need(4, "the magic number")
        magic = bytes(self._buf[magic_at:magic_at + 4])
        if magic != MAGIC:
            raise GGUFError(f"{self.path}: not a GGUF file (starts with {magic!r}, GGUF files with b'GGUF')")
        version = self._scalar("<I", "the version")
        if version not in (2, 3):
            raise GGUFError(f"{self.path}: GGUF version {version} is not supported (2 and 3 are)")
        n_tensors = self._scalar("<Q", "the tensor count")
        n_kv = self._scalar("<Q", "the metadata count")
        remaining = self.end - self._pos
        if n_tensors > remaining or n_kv > remaining:
            raise GGUFError(f"{self.path}: corrupted header: {n_tensors} tensors and {n_kv} metadata items "
                            f"cannot fit in {remaining} bytes")
        for i in range(n_kv):
            key = self._string(f"metadata key {i}")
            if "\0" in key:
                raise GGUFError(f"{self.path}: corrupted: metadata key {i} holds a NUL byte")
            vtype = self._scalar("<I", f"the type of {key}")
            self.fields[key] = self._value(vtype, f"metadata {key}")
        for i in range(n_tensors):
            name = self._string(f"tensor name {i}")
            if "\0" in name:
                raise GGUFError(f"{self.path}: corrupted: tensor name {i} holds a NUL byte")
            n_dims = self._scalar("<I", f"the dimensions of tensor {name}")
            if n_dims > 4:
                raise GGUFError(f"{self.path}: corrupted: tensor {name} has {n_dims} dimensions")
            dims = tuple(self._scalar("<Q", f"the shape of tensor {name}") for _ in range(n_dims))
            ttype = self._scalar("<I", f"the type of tensor {name}")
            off = self._scalar("<Q", f"the offset of tensor {name}")
            self.tensors.append(TensorInfo(name, ttype, dims, off))
        align = int(self.fields.get("general.alignment", 32))
        if align <= 0 or align & (align - 1):
            raise GGUFError(f"{self.path}: corrupted: general.alignment {align} is not a power of two")
        rel = self._pos - self.offset
        self.data_start = self.offset + (rel + align - 1) // align * align
        for t in self.tensors:
            self._map_tensor(t)

    def _map_tensor(self, t: TensorInfo) -> None:
        try:
            qt = quant_type(t.tensor_type)
        except ValueError:
            raise GGUFError(f"{self.path}: tensor {t.name} has type {ggml_type_name(t.tensor_type)}, which pocketlm "
                            f"cannot run (F32, F16, Q8_0, Q4_0, Q4_1 are supported)") from None
        n_per_row = t.shape[0] if t.shape else 1
        rows = int(np.prod(t.shape[1:], dtype=np.int64)) if len(t.shape) > 1 else 1
        if n_per_row % qt.block_size:
            raise GGUFError(f"{self.path}: tensor {t.name}: rows of {n_per_row} values are not whole "
                            f"{qt.name} blocks of {qt.block_size}")
        row_bytes = n_per_row // qt.block_size * qt.block_bytes
        start = self.data_start + t.offset
        if start + rows * row_bytes > self.end:
            raise GGUFError(f"{self.path}: truncated: tensor {t.name} ends at byte "
                            f"{start + rows * row_bytes - self.offset}, past the end "
                            f"({self.end - self.offset} bytes)")
        if qt.is_block:
            arr = np.frombuffer(self._map, np.uint8, rows * row_bytes, start).reshape(rows, row_bytes)
        else:
            arr = np.frombuffer(self._map, qt.storage, rows * n_per_row, start).reshape(tuple(reversed(t.shape)))
        t.data = arr

    def field(self, key: str, default=None):
        v = self.fields.get(key, default)
        return v.tolist() if isinstance(v, np.ndarray) else v
