"""Kernel backends: ``native`` (libpocketlm through cffi), ``numba`` (the
fallback when the library is not built) and ``reference`` (NumPy, the
oracle). All three expose the same functions with the same signatures and
raise the same ValueErrors.

``POCKETLM_BACKEND=native|numba|reference`` picks one; unset, native is used
when libpocketlm loads, else Numba with one warning that says why. The
module forwards attribute access to the chosen backend, so
``pocketlm.kernels.matmul(x, w, "Q8_0")`` runs on it; ``get_backend(name)``
returns a specific one.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

BACKENDS = ("native", "numba", "reference")
KERNELS = (
    "quantize", "dequantize", "get_rows", "matmul", "rms_norm", "layer_norm", "rope", "softmax", "silu", "gelu",
    "silu_mul", "gelu_mul", "add", "attention", "set_num_threads", "get_num_threads", "set_max_threads",
)

_loaded: dict[str, ModuleType] = {}
_active: ModuleType | None = None


def get_backend(name: str | None = None) -> ModuleType:
    """The backend module called ``name``, or the active one when ``name`` is None.
    Asking for native when it cannot load raises ImportError with the reason."""
    if name is None:
        return active_backend()
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if name not in _loaded:
        _loaded[name] = importlib.import_module(f".{'numba_kernels' if name == 'numba' else name}", __name__)
    return _loaded[name]


def native_unavailable_reason() -> str | None:
    """None when the native backend loads, else why it does not."""
    try:
        get_backend("native")
        return None
    except ImportError as e:
        return str(e)


def active_backend() -> ModuleType:
    global _active
    if _active is None:
        requested = os.environ.get("POCKETLM_BACKEND", "").strip().lower()
        if requested:
            _active = get_backend(requested)
        else:
            reason = native_unavailable_reason()
            if reason is None:
                _active = get_backend("native")
            else:
                warnings.warn(f"pocketlm: native kernels unavailable, using the Numba fallback: {reason}",
                              RuntimeWarning, stacklevel=2)
                _active = get_backend("numba")
    return _active


def set_backend(name: str) -> ModuleType:
    """Makes ``name`` the active backend for later calls; returns it."""
    global _active
    _active = get_backend(name)
    return _active


def __getattr__(attr: str):
    if attr in KERNELS:
        return getattr(active_backend(), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
