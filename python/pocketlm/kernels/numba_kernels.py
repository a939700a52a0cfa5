"""Every kernel in Numba: the fallback backend for machines without the
native build. Same signatures and contract as reference.py (activations go
to Q8_0 blocks before block-quantized products, GGUF's rounding when
quantizing); fp16 scales are read through a 65536-entry table since Numba
has no half type. Compiled on first use and cached on disk.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from ..model.quant import F16, F32, Q4_0, Q4_1, Q8_0, QK, QuantType
from . import _checks

name = "numba"
_F = np.float32
_FP16_TABLE = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
_max_threads = 0  # cap (a simulated phone's cores); 0 = none
_default_threads = numba.config.NUMBA_NUM_THREADS


# ---- quantization ------------------------------------------------------------


@njit(cache=True)
def _roundf(v):
    """C's roundf (half away from zero) of a float32, exact through float64."""
    f = np.float64(v)
    return np.trunc(f + 0.5) if f >= 0.0 else np.trunc(f - 0.5)


@njit(cache=True, parallel=True)
def _quantize_q8_0(x, d, qs):
    """x [rows, k] -> d [rows, nb] (float32, before fp16 rounding), qs [rows, k] int8."""
    rows, k = x.shape
    for r in prange(rows):
        for b in range(k // 32):
            amax = np.float32(0.0)
            for j in range(32):
                amax = max(amax, abs(x[r, b * 32 + j]))
            dv = np.float32(amax / np.float32(127.0))
            inv = np.float32(1.0) / dv if dv != 0 else np.float32(0.0)
            d[r, b] = dv
            for j in range(32):
                qs[r, b * 32 + j] = np.int8(_roundf(np.float32(x[r, b * 32 + j] * inv)))


@njit(cache=True, parallel=True)
def _quantize_q4(x, d, mins, qs, with_min):
    """Q4_0 (with_min False) or Q4_1 rows; qs [rows, k] holds values 0..15 in order."""
    rows, k = x.shape
    for r in prange(rows):
        for b in range(k // 32):
            base = b * 32
            if with_min:
                lo = x[r, base]
                hi = x[r, base]
                for j in range(1, 32):
                    lo = min(lo, x[r, base + j])
                    hi = max(hi, x[r, base + j])
                dv = np.float32((hi - lo) / np.float32(15.0))
                off = lo
                add = np.float32(0.5)
            else:
                amax = np.float32(0.0)
                mx = np.float32(0.0)
                for j in range(32):
                    if amax < abs(x[r, base + j]):
                        amax = abs(x[r, base + j])
                        mx = x[r, base + j]
                dv = np.float32(mx / np.float32(-8.0))
                off = np.float32(0.0)
                add = np.float32(8.5)
            inv = np.float32(1.0) / dv if dv != 0 else np.float32(0.0)
            d[r, b] = dv
            mins[r, b] = off
            for j in range(32):
                v = np.float32(np.float32(np.float32(x[r, base + j] - off) * inv) + add)
                q = int(v)  # truncation, as C's (int8_t) cast
                qs[r, base + j] = min(q, 15)


def _fp16_bytes(v: np.ndarray) -> np.ndarray:
    return v.astype(np.float16).view(np.uint8).reshape(*v.shape, 2)


def _quantize_2d(x: np.ndarray, qt: QuantType) -> np.ndarray:
    rows, k = x.shape
    nb = k // QK
    d = np.empty((rows, nb), dtype=_F)
    if qt is Q8_0:
        qs = np.empty((rows, k), dtype=np.int8)
        _quantize_q8_0(x, d, qs)
        parts = [_fp16_bytes(d), qs.view(np.uint8).reshape(rows, nb, QK)]
    else:
        mins = np.empty((rows, nb), dtype=_F)
        q = np.empty((rows, k), dtype=np.uint8)
        _quantize_q4(x, d, mins, q, qt is Q4_1)
        q = q.reshape(rows, nb, QK)
        packed = q[:, :, : QK // 2] | (q[:, :, QK // 2 :] << 4)
        parts = [_fp16_bytes(d)] + ([_fp16_bytes(mins)] if qt is Q4_1 else []) + [packed]
    return np.concatenate(parts, axis=2).reshape(rows, nb * qt.block_bytes)


def quantize(x, qtype) -> np.ndarray:
    qt, x = _checks.quantize_args(x, qtype)
    if qt is F32:
        return x.copy()
    if qt is F16:
        return x.astype(np.float16)
    x2 = x.reshape(-1, x.shape[-1])
    return _quantize_2d(x2, qt).reshape(*x.shape[:-1], -1)


@njit(cache=True, parallel=True)
def _dequantize_block_rows(w, out, tbl, kind):
    """kind 0: Q8_0, 1: Q4_0, 2: Q4_1; w uint8 [rows, row_bytes] -> out [rows, k]."""
    rows, k = out.shape
    bb = 34 if kind == 0 else (18 if kind == 1 else 20)
    for r in prange(rows):
        for b in range(k // 32):
            o = b * bb
            d = tbl[np.int32(w[r, o]) | (np.int32(w[r, o + 1]) << 8)]
            if kind == 0:
                for j in range(32):
                    out[r, b * 32 + j] = np.float32(np.int8(w[r, o + 2 + j])) * d
            else:
                m = np.float32(0.0)
                q0 = o + 2
                bias = 8
                if kind == 2:
                    m = tbl[np.int32(w[r, o + 2]) | (np.int32(w[r, o + 3]) << 8)]
                    q0 = o + 4
                    bias = 0
                for j in range(16):
                    byte = np.int32(w[r, q0 + j])
                    out[r, b * 32 + j] = np.float32((byte & 15) - bias) * d + m
                    out[r, b * 32 + 16 + j] = np.float32((byte >> 4) - bias) * d + m


_KIND = {Q8_0.id: 0, Q4_0.id: 1, Q4_1.id: 2}


def _dequantize_2d(w: np.ndarray, qt: QuantType, k: int) -> np.ndarray:
    if qt is F32 or qt is F16:
        return w.astype(_F, copy=True)
    out = np.empty((w.shape[0], k), dtype=_F)
    _dequantize_block_rows(w, out, _FP16_TABLE, _KIND[qt.id])
    return out


def dequantize(q, qtype, k: int | None = None) -> np.ndarray:
    qt, q2, _, k, squeeze = _checks.dequantize_args(q, qtype, k)
    out = _dequantize_2d(q2, qt, k)
    return out[0] if squeeze else out


def get_rows(w, qtype, ids, k: int | None = None) -> np.ndarray:
    qt, w, n, k = _checks.weight(w, qtype, k)
    ids = _checks.ids(ids, n)
    return _dequantize_2d(np.ascontiguousarray(w[ids]), qt, k)


# ---- products ------------------------------------------------------------------


@njit(cache=True, parallel=True, fastmath=True)
def _mm_f32(x, w, y):
    m, k = x.shape
    for r in prange(w.shape[0]):
        for i in range(m):
            acc = np.float32(0.0)
            for j in range(k):
                acc += w[r, j] * x[i, j]
            y[i, r] = acc


@njit(cache=True, parallel=True, fastmath=True)
def _mm_f16(x, w16, y, tbl):
    m, k = x.shape
    for r in prange(w16.shape[0]):
        for i in range(m):
            acc = np.float32(0.0)
            for j in range(k):
                acc += tbl[w16[r, j]] * x[i, j]
            y[i, r] = acc


# The block products below keep 32 per-lane partial sums across all blocks
# of a row (acc[j] += w_bj * x_bj * d_b) instead of summing each block to a
# scalar first: the lane update has no loop-carried reduction, so LLVM
# vectorizes it, where a 32-long inner reduction per block stays scalar (a
# 10x difference measured). Q4_0's (q - 8) * d is taken as q * d + m with
# m = -8 d, as in the C kernel. Results differ from the integer-exact
# reference only by float rounding.


@njit(cache=True, parallel=True, fastmath=True)
def _mm_q8_0(w, xqf, xd, y, tbl):
    m = xqf.shape[0]
    nb = xd.shape[1]
    wi = w.view(np.int8)
    for r in prange(w.shape[0]):
        acc = np.empty(32, dtype=np.float32)
        for i in range(m):
            acc[:] = 0.0
            for b in range(nb):
                o = b * 34
                d = tbl[np.int32(w[r, o]) | (np.int32(w[r, o + 1]) << 8)] * xd[i, b]
                for j in range(32):
                    acc[j] += np.float32(wi[r, o + 2 + j]) * xqf[i, b * 32 + j] * d
            y[i, r] = acc.sum()


def _make_mm_q4(with_min: bool):
    """Q4_1 (with_min) or Q4_0 product; the type is a compile-time constant
    so the inner loop has no branch on it."""
    bb = 20 if with_min else 18
    q_off = 4 if with_min else 2

    @njit(cache=True, parallel=True, fastmath=True)
    def mm_q4(w, xqf, xd, xsum, y, tbl):
        m = xqf.shape[0]
        nb = xd.shape[1]
        for r in prange(w.shape[0]):
            acc_lo = np.empty(16, dtype=np.float32)  # two arrays: LLVM then sees the lanes cannot overlap
            acc_hi = np.empty(16, dtype=np.float32)
            for i in range(m):
                acc_lo[:] = 0.0
                acc_hi[:] = 0.0
                summ = np.float32(0.0)
                for b in range(nb):
                    o = b * bb
                    dw = tbl[np.int32(w[r, o]) | (np.int32(w[r, o + 1]) << 8)]
                    if with_min:
                        summ += tbl[np.int32(w[r, o + 2]) | (np.int32(w[r, o + 3]) << 8)] * xsum[i, b]
                    else:
                        summ += np.float32(-8.0) * dw * xsum[i, b]
                    d = dw * xd[i, b]
                    for j in range(16):
                        # nibbles split in float: Numba widens integer ops to
                        # 64 bits, which AVX2 cannot convert to float in vector form
                        byte = np.float32(w[r, o + q_off + j])
                        hi = np.float32(np.int32(byte * np.float32(0.0625)))  # truncation = floor here
                        acc_lo[j] += (byte - np.float32(16.0) * hi) * xqf[i, b * 32 + j] * d
                        acc_hi[j] += hi * xqf[i, b * 32 + 16 + j] * d
                y[i, r] = acc_lo.sum() + acc_hi.sum() + summ

    return mm_q4


_mm_q4_0 = _make_mm_q4(False)
_mm_q4_1 = _make_mm_q4(True)


@njit(cache=True)
def _block_sums(xq, xd):
    m, nb = xd.shape
    out = np.empty((m, nb), dtype=np.float32)
    for i in range(m):
        for b in range(nb):
            s = 0
            for j in range(32):
                s += np.int32(xq[i, b * 32 + j])
            out[i, b] = xd[i, b] * np.float32(s)
    return out


def _with_threads(n_threads):
    n = _checks.threads(n_threads) or _default_threads
    if _max_threads:
        n = min(n, _max_threads)
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def matmul(x, w, qtype, n_threads=None) -> np.ndarray:
    qt, x, w, m, n, k, squeeze = _checks.matmul_args(x, w, qtype)
    _with_threads(n_threads)
    y = np.empty((m, n), dtype=_F)
    if qt is F32:
        _mm_f32(x, w, y)
    elif qt is F16:
        _mm_f16(x, w.view(np.uint16), y, _FP16_TABLE)
    else:
        xd = np.empty((m, k // QK), dtype=_F)
        xq = np.empty((m, k), dtype=np.int8)
        _quantize_q8_0(x, xd, xq)
        xd = xd.astype(np.float16).astype(_F)  # the activation block's scale is fp16, as in Q8_0
        xqf = xq.astype(_F)
        if qt is Q8_0:
            _mm_q8_0(w, xqf, xd, y, _FP16_TABLE)
        else:
            (_mm_q4_1 if qt is Q4_1 else _mm_q4_0)(w, xqf, xd, _block_sums(xq, xd), y, _FP16_TABLE)
    return y[0] if squeeze else y


# ---- norms, rope, elementwise ---------------------------------------------------


@njit(cache=True)
def _rms_norm(x, w, y, eps, w_offset, has_w):
    rows, n = x.shape
    for r in range(rows):
        ss = np.float32(0.0)
        for i in range(n):
            ss += x[r, i] * x[r, i]
        inv = np.float32(1.0) / np.float32(math.sqrt(ss / np.float32(n) + eps))
        for i in range(n):
            y[r, i] = x[r, i] * inv * (w[i] + w_offset) if has_w else x[r, i] * inv


@njit(cache=True)
def _layer_norm(x, w, b, y, eps, has_w, has_b):
    rows, n = x.shape
    for r in range(rows):
        mean = np.float32(0.0)
        for i in range(n):
            mean += x[r, i]
        mean /= np.float32(n)
        var = np.float32(0.0)
        for i in range(n):
            var += (x[r, i] - mean) * (x[r, i] - mean)
        var /= np.float32(n)
        inv = np.float32(1.0) / np.float32(math.sqrt(var + eps))
        for i in range(n):
            v = (x[r, i] - mean) * inv
            if has_w:
                v *= w[i]
            if has_b:
                v += b[i]
            y[r, i] = v


_EMPTY = np.zeros(1, dtype=_F)


def rms_norm(x, w, eps: float, w_offset: float = 0.0) -> np.ndarray:
    x, w, _ = _checks.norm_args(x, w, None, "rms_norm")
    x2 = x.reshape(-1, x.shape[-1]) if x.size else x.reshape(0, max(x.shape[-1], 0))
    y = np.empty_like(x2)
    _rms_norm(x2, _EMPTY if w is None else w, y, _F(eps), _F(w_offset), w is not None)
    return y.reshape(x.shape)


def layer_norm(x, w, b, eps: float) -> np.ndarray:
    x, w, b = _checks.norm_args(x, w, b, "layer_norm")
    x2 = x.reshape(-1, x.shape[-1]) if x.size else x.reshape(0, max(x.shape[-1], 0))
    y = np.empty_like(x2)
    _layer_norm(x2, _EMPTY if w is None else w, _EMPTY if b is None else b, y, _F(eps), w is not None,
                b is not None)
    return y.reshape(x.shape)


_NO_FACTORS = np.empty(0, dtype=np.float64)  # plain RoPE: no per-frequency divisors


@njit(cache=True)
def _rope(x, pos, theta, rot_dim, freq_scale, ff, neox):
    n_tokens, n_heads, _ = x.shape
    half = rot_dim // 2
    cs = np.empty((half, 2), dtype=np.float32)
    for t in range(n_tokens):
        p = np.float64(pos[t]) * freq_scale
        for i in range(half):
            ang = p * theta ** (-2.0 * i / rot_dim)
            if ff.size:
                ang /= ff[i]
            cs[i, 0] = math.cos(ang)
            cs[i, 1] = math.sin(ang)
        for h in range(n_heads):
            for i in range(half):
                a = i if neox else 2 * i
                b = i + half if neox else 2 * i + 1
                x0 = x[t, h, a]
                x1 = x[t, h, b]
                x[t, h, a] = x0 * cs[i, 0] - x1 * cs[i, 1]
                x[t, h, b] = x1 * cs[i, 0] + x0 * cs[i, 1]


def rope(x: np.ndarray, positions, theta: float, rot_dim: int | None = None, mode: str = "neox",
         freq_scale: float = 1.0, freq_factors=None) -> np.ndarray:
    pos, rot_dim, ff = _checks.rope_args(x, positions, theta, rot_dim, mode, freq_factors)
    if rot_dim and x.size:
        ff = _NO_FACTORS if ff is None else ff.astype(np.float64)
        _rope(x, pos, float(theta), rot_dim, float(np.float32(freq_scale)), ff, mode == "neox")
    return x


@njit(cache=True)
def _softmax(x, y):
    rows, n = x.shape
    for r in range(rows):
        mx = x[r, 0]
        for i in range(1, n):
            mx = max(mx, x[r, i])
        s = np.float32(0.0)
        for i in range(n):
            y[r, i] = math.exp(x[r, i] - mx)
            s += y[r, i]
        inv = np.float32(1.0) / s
        for i in range(n):
            y[r, i] *= inv


def softmax(x) -> np.ndarray:
    x = _checks.f32(x, "x")
    if x.size == 0:
        return x.copy()
    y = np.empty_like(x)
    _softmax(x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1]))
    return y


@njit(cache=True, fastmath=True)
def _act(x, up, y, kind, gated):
    """kind 0: silu, 1: gelu tanh, 2: gelu erf; y = act(x) (* up when gated)."""
    for i in range(x.size):
        v = x[i]
        if kind == 0:
            a = v / (np.float32(1.0) + math.exp(-v))
        elif kind == 1:
            a = np.float32(0.5) * v * (np.float32(1.0) + math.tanh(
                np.float32(0.7978845608028654) * (v + np.float32(0.044715) * v * v * v)))
        else:
            a = np.float32(0.5) * v * (np.float32(1.0) + math.erf(v * np.float32(0.7071067811865476)))
        y[i] = a * up[i] if gated else a


def _activation(x, up, kind):
    x = _checks.f32(x, "gate" if up is not None else "x")
    if up is not None:
        up = _checks.f32(up, "up")
        _checks.same_shape(x, up, "gate and up")
    y = np.empty_like(x)
    _act(x.reshape(-1), _EMPTY if up is None else up.reshape(-1), y.reshape(-1), kind, up is not None)
    return y


def silu(x) -> np.ndarray:
    return _activation(x, None, 0)


def gelu(x, approximate: bool = True) -> np.ndarray:
    return _activation(x, None, 1 if approximate else 2)


def silu_mul(gate, up) -> np.ndarray:
    return _activation(gate, up, 0)


def gelu_mul(gate, up, approximate: bool = True) -> np.ndarray:
    return _activation(gate, up, 1 if approximate else 2)


def add(a, b) -> np.ndarray:
    a, b = _checks.f32(a, "a"), _checks.f32(b, "b")
    _checks.same_shape(a, b, "a and b")
    return a + b


# ---- attention ---------------------------------------------------------------------


@njit(cache=True, parallel=True, fastmath=True)
def _attention(q, k, v, out, n_kv, q_pos0, scale, softcap, window, alibi, has_alibi):
    n_q, n_heads, hd = q.shape
    group = n_heads // k.shape[1]
    for idx in prange(n_q * n_heads):
        i = idx // n_heads
        h = idx % n_heads
        kvh = h // group
        pos = q_pos0 + i
        j0 = max(0, pos - window + 1) if window > 0 else 0
        scores = np.empty(pos - j0 + 1, dtype=np.float32)
        mx = -np.inf
        for j in range(j0, pos + 1):
            s = np.float32(0.0)
            for t in range(hd):
                s += q[i, h, t] * k[j, kvh, t]
            s *= scale
            if softcap > 0:
                s = softcap * math.tanh(s / softcap)
            if has_alibi:
                s += alibi[h] * np.float32(j - pos)
            scores[j - j0] = s
            mx = max(mx, s)
        total = np.float32(0.0)
        for j in range(scores.size):
            scores[j] = math.exp(scores[j] - mx)
            total += scores[j]
        for t in range(hd):
            out[i, h, t] = 0.0
        for j in range(j0, pos + 1):
            p = scores[j - j0] / total
            for t in range(hd):
                out[i, h, t] += p * v[j, kvh, t]


def attention(q, k_cache, v_cache, n_kv: int, q_pos0: int, scale: float, softcap: float = 0.0,
              window: int = 0, alibi_slopes=None, n_threads=None) -> np.ndarray:
    q, k_cache, v_cache, alibi = _checks.attention_args(q, k_cache, v_cache, n_kv, q_pos0, window, alibi_slopes)
    _with_threads(n_threads)
    out = np.empty_like(q)
    if q.size:
        _attention(q, k_cache, v_cache, out, int(n_kv), int(q_pos0), _F(scale), _F(softcap), int(window),
                   _EMPTY if alibi is None else alibi, alibi is not None)
    return out


# ---- threads -----------------------------------------------------------------------


def set_num_threads(n: int) -> int:
    """Default thread count of later calls; returns the previous one."""
    global _default_threads
    prev, _default_threads = _default_threads, _checks.threads(n)
    return prev


def get_num_threads() -> int:
    return min(_default_threads, _max_threads) if _max_threads else _default_threads


def set_max_threads(n: int) -> int:
    """Caps every call's threads (0 removes the cap); returns the previous cap."""
    global _max_threads
    prev, _max_threads = _max_threads, max(0, int(n))
    return prev
