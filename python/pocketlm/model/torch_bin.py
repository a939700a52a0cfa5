"""Reads PyTorch's pytorch_model.bin (the zip format of torch.save) without
torch and without running pickled code.

The pickle inside only ever needs to rebuild tensors from storages, so the
unpickler resolves a short allow-list of names (tensor and parameter
rebuilders, typed storages, OrderedDict) to local stand-ins and refuses any
other global: a checkpoint that tries to import os or call a function is an
error, never executed.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "HalfStorage": np.float16, "BFloat16Storage": "bf16", "DoubleStorage": np.float64,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_TORCH_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": "bf16", "float64": np.float64,
                 "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
                 "bool": np.bool_}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class _DType:
    def __init__(self, name):
        self.name = name


def _as_array(raw: bytes, dtype) -> np.ndarray:
    if dtype == "bf16":
        return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype=dtype)


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    arr = storage
    if len(size) == 0:
        return arr[offset : offset + 1].reshape(()).copy()
    item = arr.itemsize
    view = np.lib.stride_tricks.as_strided(arr[offset:], shape=tuple(size), strides=tuple(s * item for s in stride))
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, *_ignored):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, fp, zf: zipfile.ZipFile, prefix: str):
        super().__init__(fp)
        self.zf, self.prefix = zf, prefix
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return _DType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a checkpoint holds tensors, not code")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        stype, key = pid[1], str(pid[2])
        dtype = stype.dtype if isinstance(stype, _StorageType) else _TORCH_DTYPES.get(getattr(stype, "name", ""))
        if dtype is None:
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        if key not in self._storages:
            self._storages[key] = _as_array(self.zf.read(f"{self.prefix}data/{key}"), dtype)
        return self._storages[key]


def read_torch_bin(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a torch.save'd state dict (zip format) as NumPy arrays."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a zip-format torch checkpoint (the legacy pre-1.6 format is not supported)")
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {len(pkl)}")
        prefix = pkl[0][: -len("data.pkl")]
        with zf.open(pkl[0]) as fp:
            state = _SafeUnpickler(fp, zf, prefix).load()
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
