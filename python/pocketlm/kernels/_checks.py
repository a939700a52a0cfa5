"""Argument checks shared by every kernel backend.

Each backend calls these before doing any work, so a shape or dtype a kernel
cannot take raises the same ValueError whichever backend runs, and the
backends themselves only ever see contiguous arrays of the right dtype.
"""

from __future__ import annotations

import numpy as np

from ..model.quant import QuantType, check_row_length, quant_type

ROPE_MODES = {"neox": 0, "gptj": 1}


def f32(x, name: str, ndim: int | None = None) -> np.ndarray:
    """A C-contiguous float32 view or copy of ``x``."""
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}")


def weight(w, qtype, k: int | None = None) -> tuple[QuantType, np.ndarray, int, int]:
    """Checks a weight matrix of ``qtype``: F32 / F16 as float arrays [n, k],
    block types as uint8 [n, row_bytes]. Returns (type, contiguous w, n, k)."""
    qt = quant_type(qtype)
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"a {qt.name} weight matrix must be 2-D, got shape {w.shape}")
    if w.dtype != qt.storage:
        raise ValueError(f"a {qt.name} weight matrix must be stored as {qt.storage}, got {w.dtype}")
    n = w.shape[0]
    if qt.is_block:
        if k is None:
            if w.shape[1] % qt.block_bytes:
                raise ValueError(f"{qt.name} rows of {w.shape[1]} bytes are not whole {qt.block_bytes}-byte blocks")
            k = w.shape[1] // qt.block_bytes * qt.block_size
        check_row_length(qt, k)
        if w.shape[1] != qt.row_bytes(k):
            raise ValueError(
                f"{qt.name} rows of {k} values take {qt.row_bytes(k)} bytes, but the weight rows have {w.shape[1]}"
            )
    else:
        if k is not None and w.shape[1] != k:
            raise ValueError(f"weight rows have {w.shape[1]} values, the input rows {k}")
        k = w.shape[1]
    return qt, np.ascontiguousarray(w), n, k


def matmul_args(x, w, qtype):
    """Returns (type, x as [m, k], w, m, n, k, x_was_1d)."""
    x = f32(x, "x")
    if x.ndim not in (1, 2):
        raise ValueError(f"x must be 1-D [k] or 2-D [m, k], got shape {x.shape}")
    squeeze = x.ndim == 1
    x2 = x.reshape(1, -1) if squeeze else x
    qt, w, n, k = weight(w, qtype, x2.shape[1])
    return qt, x2, w, x2.shape[0], n, k, squeeze


def quantize_args(x, qtype):
    qt = quant_type(qtype)
    x = f32(x, "x")
    if x.ndim not in (1, 2):
        raise ValueError(f"x must be 1-D or 2-D, got shape {x.shape}")
    check_row_length(qt, x.shape[-1])
    return qt, x


def dequantize_args(q, qtype, k):
    q = np.asarray(q)
    squeeze = q.ndim == 1
    qt, q2, n, k = weight(q.reshape(1, -1) if squeeze else q, qtype, k)
    return qt, q2, n, k, squeeze


def ids(token_ids, n_rows: int) -> np.ndarray:
    a = np.asarray(token_ids)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a.reshape(-1), dtype=np.int32)
    bad = (a < 0) | (a >= n_rows)
    if bad.any():
        raise ValueError(f"id {int(a[bad][0])} is outside the table's {n_rows} rows")
    return a


def norm_args(x, w, b, name: str):
    x = f32(x, "x")
    if x.ndim < 1:
        raise ValueError("x must have at least one dimension")
    n = x.shape[-1]
    out = []
    for v, vname in ((w, "weight"), (b, "bias")):
        if v is None:
            out.append(None)
            continue
        v = f32(v, f"{name} {vname}", ndim=1)
        if v.shape[0] != n:
            raise ValueError(f"{name} {vname} has {v.shape[0]} values, rows have {n}")
        out.append(v)
    return x, out[0], out[1]


def rope_args(x, positions, theta, rot_dim, mode, freq_factors=None):
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError("rope works in place: x must be a C-contiguous float32 array [n_tokens, n_heads, head_dim]")
    if x.ndim != 3:
        raise ValueError(f"x must be [n_tokens, n_heads, head_dim], got shape {x.shape}")
    n_tokens, _, head_dim = x.shape
    rot_dim = head_dim if rot_dim is None else int(rot_dim)
    if rot_dim < 0 or rot_dim > head_dim or rot_dim % 2:
        raise ValueError(f"rot_dim must be even and within head_dim {head_dim}, got {rot_dim}")
    if mode not in ROPE_MODES:
        raise ValueError(f"rope mode must be one of {sorted(ROPE_MODES)}, got {mode!r}")
    if not theta > 0:
        raise ValueError(f"rope theta must be > 0, got {theta}")
    pos = np.asarray(positions)
    if not np.issubdtype(pos.dtype, np.integer) or pos.shape != (n_tokens,):
        raise ValueError(f"positions must be {n_tokens} integers, got {pos.dtype} of shape {pos.shape}")
    if freq_factors is not None:
        ff = np.ascontiguousarray(freq_factors, dtype=np.float32)
        if ff.shape != (rot_dim // 2,) or not np.all(ff > 0):
            raise ValueError(f"freq_factors must be {rot_dim // 2} positive values (rot_dim / 2), got shape {ff.shape}")
        freq_factors = ff
    return np.ascontiguousarray(pos, dtype=np.int32), rot_dim, freq_factors


def attention_args(q, k_cache, v_cache, n_kv, q_pos0, window, alibi_slopes):
    q = f32(q, "q", ndim=3)
    k_cache = f32(k_cache, "k_cache", ndim=3)
    v_cache = f32(v_cache, "v_cache", ndim=3)
    n_q, n_heads, head_dim = q.shape
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"k_cache and v_cache differ: {k_cache.shape} vs {v_cache.shape}")
    n_ctx, n_kv_heads, kv_dim = k_cache.shape
    if kv_dim != head_dim:
        raise ValueError(f"cache head_dim {kv_dim} differs from the queries' {head_dim}")
    if n_kv_heads < 1 or n_heads % n_kv_heads:
        raise ValueError(f"{n_heads} query heads cannot share {n_kv_heads} kv heads evenly")
    if not 0 <= n_kv <= n_ctx:
        raise ValueError(f"n_kv {n_kv} is outside the cache's {n_ctx} positions")
    if q_pos0 < 0 or q_pos0 + n_q > n_kv:
        raise ValueError(f"queries at positions {q_pos0}..{q_pos0 + n_q - 1} need keys the cache's {n_kv} do not hold")
    if window < 0:
        raise ValueError(f"window must be >= 0 (0 = no window), got {window}")
    if alibi_slopes is not None:
        alibi_slopes = f32(alibi_slopes, "alibi_slopes", ndim=1)
        if alibi_slopes.shape[0] != n_heads:
            raise ValueError(f"alibi_slopes needs {n_heads} values, got {alibi_slopes.shape[0]}")
    return q, k_cache, v_cache, alibi_slopes


def threads(n_threads) -> int:
    if n_threads is None:
        return 0
    n = int(n_threads)
    if n < 1:
        raise ValueError(f"n_threads must be >= 1 (or None for the default), got {n_threads}")
    return n
