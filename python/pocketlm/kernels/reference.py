"""The NumPy reference of every kernel: the oracle the other backends are
tested against. Written for clarity, not speed; it follows the same
contract as the C kernels (pocketlm.h), including quantizing activations to
Q8_0 blocks before products with block-quantized weights, and GGUF's
reference rounding when quantizing.
"""

from __future__ import annotations

import numpy as np

from ..model.quant import F16, F32, Q4_0, Q4_1, Q8_0, QK, QuantType
from . import _checks

name = "reference"
_F = np.float32


# ---- quantization ------------------------------------------------------------


def _roundf(v: np.ndarray) -> np.ndarray:
    """C's roundf (half away from zero); float64 makes v +- 0.5 exact."""
    v64 = v.astype(np.float64)
    return np.trunc(v64 + np.copysign(0.5, v64))


def _inverse(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(d == 0, _F(0), _F(1) / d).astype(_F)


def _fp16_bytes(v: np.ndarray) -> np.ndarray:
    return v.astype(np.float16).view(np.uint8).reshape(v.shape[0], 2)


def _quantize_blocks(b: np.ndarray, qt: QuantType) -> np.ndarray:
    """b: float32 [n_blocks, 32] -> uint8 [n_blocks, block_bytes]."""
    nb = b.shape[0]
    if qt is Q8_0:
        d = (np.abs(b).max(axis=1) / _F(127)).astype(_F)
        q = _roundf(b * _inverse(d)[:, None]).astype(np.int8).view(np.uint8)
        return np.concatenate([_fp16_bytes(d), q], axis=1)
    if qt is Q4_0:
        idx = np.abs(b).argmax(axis=1)  # first value of the largest magnitude, sign kept
        d = (b[np.arange(nb), idx] / _F(-8)).astype(_F)
        q = np.minimum(np.trunc(b * _inverse(d)[:, None] + _F(8.5)), 15).astype(np.uint8)
        packed = q[:, : QK // 2] | (q[:, QK // 2 :] << 4)
        return np.concatenate([_fp16_bytes(d), packed], axis=1)
    if qt is Q4_1:
        lo, hi = b.min(axis=1), b.max(axis=1)
        d = ((hi - lo) / _F(15)).astype(_F)
        q = np.minimum(np.trunc((b - lo[:, None]) * _inverse(d)[:, None] + _F(0.5)), 15).astype(np.uint8)
        packed = q[:, : QK // 2] | (q[:, QK // 2 :] << 4)
        return np.concatenate([_fp16_bytes(d), _fp16_bytes(lo), packed], axis=1)
    raise AssertionError(qt)


def quantize(x, qtype) -> np.ndarray:
    """Rows of floats -> rows of the type (uint8 bytes for block types,
    float32 / float16 arrays for F32 / F16)."""
    qt, x = _checks.quantize_args(x, qtype)
    if qt is F32:
        return x.copy()
    if qt is F16:
        return x.astype(np.float16)
    shape = x.shape
    blocks = _quantize_blocks(x.reshape(-1, QK), qt)
    return blocks.reshape(*shape[:-1], shape[-1] // QK * qt.block_bytes)


def _unpack(w: np.ndarray, qt: QuantType):
    """uint8 [n, row_bytes] -> (scales [n, nb], mins [n, nb] or None, ints [n, nb, 32])."""
    n = w.shape[0]
    blk = w.reshape(n, -1, qt.block_bytes)
    d = blk[:, :, 0:2].copy().view(np.float16)[..., 0].astype(_F)
    if qt is Q8_0:
        return d, None, blk[:, :, 2:].view(np.int8).astype(np.int32)
    off = 4 if qt is Q4_1 else 2
    qs = blk[:, :, off:]
    ints = np.concatenate([qs & 0x0F, qs >> 4], axis=2).astype(np.int32)
    if qt is Q4_0:
        return d, None, ints - 8
    m = blk[:, :, 2:4].copy().view(np.float16)[..., 0].astype(_F)
    return d, m, ints


def _dequantize_2d(w: np.ndarray, qt: QuantType, k: int) -> np.ndarray:
    if qt is F32:
        return w.astype(_F, copy=True)
    if qt is F16:
        return w.astype(_F)
    d, m, ints = _unpack(w, qt)
    v = ints.astype(_F) * d[:, :, None]
    if m is not None:
        v = v + m[:, :, None]
    return v.reshape(w.shape[0], k)


def dequantize(q, qtype, k: int | None = None) -> np.ndarray:
    qt, q2, _, k, squeeze = _checks.dequantize_args(q, qtype, k)
    out = _dequantize_2d(q2, qt, k)
    return out[0] if squeeze else out


def get_rows(w, qtype, ids, k: int | None = None) -> np.ndarray:
    qt, w, n, k = _checks.weight(w, qtype, k)
    ids = _checks.ids(ids, n)
    return _dequantize_2d(w[ids], qt, k)


# ---- products ------------------------------------------------------------------


def matmul(x, w, qtype, n_threads=None) -> np.ndarray:
    """y[m, n] = x[m, k] . w[n, k]; x 1-D gives y 1-D."""
    qt, x, w, m, n, k, squeeze = _checks.matmul_args(x, w, qtype)
    _checks.threads(n_threads)
    if qt is F32 or qt is F16:
        y = x @ w.astype(_F).T
    else:
        # the activation contract: x -> Q8_0 blocks, integer dots per block
        xd, _, xq = _unpack(_quantize_blocks(x.reshape(-1, QK), Q8_0).reshape(m, -1), Q8_0)
        xsum = xd * xq.sum(axis=2).astype(_F)  # d_x * sum(q_x), Q4_1's minimum term
        y = np.empty((m, n), dtype=_F)
        for n0 in range(0, n, 256):
            wd, wm, wq = _unpack(w[n0 : n0 + 256], qt)
            sumi = np.einsum("mbj,nbj->mnb", xq, wq).astype(_F)
            acc = sumi * (wd[None, :, :] * xd[:, None, :])
            if wm is not None:
                acc = acc + wm[None, :, :] * xsum[:, None, :]
            y[:, n0 : n0 + 256] = acc.sum(axis=2)
    y = y.astype(_F, copy=False)
    return y[0] if squeeze else y


# ---- norms, rope, elementwise ---------------------------------------------------


def rms_norm(x, w, eps: float, w_offset: float = 0.0) -> np.ndarray:
    x, w, _ = _checks.norm_args(x, w, None, "rms_norm")
    x64 = x.astype(np.float64)
    y = x64 / np.sqrt((x64 * x64).mean(axis=-1, keepdims=True) + eps)
    if w is not None:
        y = y * (w.astype(np.float64) + w_offset)
    return y.astype(_F)


def layer_norm(x, w, b, eps: float) -> np.ndarray:
    x, w, b = _checks.norm_args(x, w, b, "layer_norm")
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=-1, keepdims=True)
    y = (x64 - mu) / np.sqrt(((x64 - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y.astype(_F)


def rope(x: np.ndarray, positions, theta: float, rot_dim: int | None = None, mode: str = "neox",
         freq_scale: float = 1.0, freq_factors=None) -> np.ndarray:
    """In place on x[n_tokens, n_heads, head_dim]; returns x. freq_factors
    (rot_dim/2 values) divide the frequencies, as llama.cpp's rope_freqs do."""
    pos, rot_dim, ff = _checks.rope_args(x, positions, theta, rot_dim, mode, freq_factors)
    half = rot_dim // 2
    if half == 0 or x.shape[0] == 0:
        return x
    inv_freq = float(theta) ** (-2.0 * np.arange(half) / rot_dim)
    if ff is not None:
        inv_freq = inv_freq / ff.astype(np.float64)
    ang = (pos.astype(np.float64) * float(np.float32(freq_scale)))[:, None] * inv_freq[None, :]
    c = np.cos(ang).astype(_F)[:, None, :]
    s = np.sin(ang).astype(_F)[:, None, :]
    if mode == "neox":
        a, b = x[..., :half].copy(), x[..., half:rot_dim].copy()
        x[..., :half] = a * c - b * s
        x[..., half:rot_dim] = b * c + a * s
    else:
        a, b = x[..., 0:rot_dim:2].copy(), x[..., 1:rot_dim:2].copy()
        x[..., 0:rot_dim:2] = a * c - b * s
        x[..., 1:rot_dim:2] = b * c + a * s
    return x


def softmax(x) -> np.ndarray:
    x = _checks.f32(x, "x").astype(np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(_F)


def silu(x) -> np.ndarray:
    x = _checks.f32(x, "x").astype(np.float64)
    return (x / (1.0 + np.exp(-x))).astype(_F)


def _gelu64(x: np.ndarray, approximate: bool) -> np.ndarray:
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf, otypes=[np.float64])(x / np.sqrt(2.0)))


def gelu(x, approximate: bool = True) -> np.ndarray:
    x = _checks.f32(x, "x").astype(np.float64)
    return _gelu64(x, approximate).astype(_F)


def silu_mul(gate, up) -> np.ndarray:
    g, u = _checks.f32(gate, "gate"), _checks.f32(up, "up")
    _checks.same_shape(g, u, "gate and up")
    return (silu(g).astype(np.float64) * u).astype(_F)


def gelu_mul(gate, up, approximate: bool = True) -> np.ndarray:
    g, u = _checks.f32(gate, "gate"), _checks.f32(up, "up")
    _checks.same_shape(g, u, "gate and up")
    return (_gelu64(g.astype(np.float64), approximate) * u).astype(_F)


def add(a, b) -> np.ndarray:
    a, b = _checks.f32(a, "a"), _checks.f32(b, "b")
    _checks.same_shape(a, b, "a and b")
    return a + b


# ---- attention ---------------------------------------------------------------------


def attention(q, k_cache, v_cache, n_kv: int, q_pos0: int, scale: float, softcap: float = 0.0,
              window: int = 0, alibi_slopes=None, n_threads=None) -> np.ndarray:
    """Causal attention of q[n_q, n_heads, head_dim] over the first n_kv
    positions of k/v_cache[n_ctx, n_kv_heads, head_dim]; see pocketlm.h."""
    q, k_cache, v_cache, alibi = _checks.attention_args(q, k_cache, v_cache, n_kv, q_pos0, window, alibi_slopes)
    _checks.threads(n_threads)
    n_q, n_heads, _ = q.shape
    group = n_heads // k_cache.shape[1]
    pos = q_pos0 + np.arange(n_q)[:, None]
    j = np.arange(n_kv)[None, :]
    visible = j <= pos
    if window > 0:
        visible &= pos - j < window
    out = np.empty_like(q)
    for h in range(n_heads):
        kh = k_cache[:n_kv, h // group, :].astype(np.float64)
        vh = v_cache[:n_kv, h // group, :].astype(np.float64)
        s = (q[:, h, :].astype(np.float64) @ kh.T) * scale
        if softcap > 0:
            s = softcap * np.tanh(s / softcap)
        if alibi is not None:
            s = s + float(alibi[h]) * (j - pos)
        s = np.where(visible, s, -np.inf)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        out[:, h, :] = (p @ vh).astype(_F)
    return out


# ---- threads (the reference runs on the calling thread alone) --------------------------


def set_num_threads(n: int) -> int:
    _checks.threads(n)
    return 1


def get_num_threads() -> int:
    return 1


def set_max_threads(n: int) -> int:
    return 0
