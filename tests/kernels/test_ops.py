"""Norms, RoPE and elementwise kernels against the reference, and the
reference against the definitions (Hugging Face's formulas)."""

import math

import numpy as np
import pytest


@pytest.mark.parametrize("shape", [(1, 8), (5, 2048), (3, 4, 33)])
@pytest.mark.parametrize("w_offset", [0.0, 1.0])
def test_rms_norm(backend, ref, rng, shape, w_offset):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(shape[-1]).astype(np.float32)
    np.testing.assert_allclose(backend.rms_norm(x, w, 1e-6, w_offset), ref.rms_norm(x, w, 1e-6, w_offset),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(backend.rms_norm(x, None, 1e-5), ref.rms_norm(x, None, 1e-5), rtol=1e-5, atol=1e-5)


def test_rms_norm_reference_definition(ref):
    x = np.array([[3.0, 4.0]], dtype=np.float32)
    # mean(x^2) = 12.5; Gemma's (1 + w) scaling with w = [0, 1]
    np.testing.assert_allclose(ref.rms_norm(x, np.array([0.0, 1.0]), 0.0, 1.0), [[3 / math.sqrt(12.5), 8 / math.sqrt(12.5)]],
                               rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 8), (7, 2560)])
def test_layer_norm(backend, ref, rng, shape):
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    w, b = rng.standard_normal((2, shape[-1])).astype(np.float32)
    np.testing.assert_allclose(backend.layer_norm(x, w, b, 1e-5), ref.layer_norm(x, w, b, 1e-5), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(backend.layer_norm(x, None, None, 1e-5), ref.layer_norm(x, None, None, 1e-5),
                               rtol=1e-4, atol=1e-4)
    y = ref.layer_norm(x, None, None, 0.0)
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-4)


@pytest.mark.parametrize("mode", ["neox", "gptj"])
@pytest.mark.parametrize("n_tokens,n_heads,head_dim,rot_dim", [(1, 1, 64, 64), (300, 3, 80, 32), (5, 7, 128, 64)])
def test_rope(backend, ref, rng, mode, n_tokens, n_heads, head_dim, rot_dim):
    x = rng.standard_normal((n_tokens, n_heads, head_dim)).astype(np.float32)
    pos = rng.integers(0, 4000, n_tokens)
    want = ref.rope(x.copy(), pos, 10000.0, rot_dim, mode, freq_scale=0.25)
    got = backend.rope(x.copy(), pos, 10000.0, rot_dim, mode, freq_scale=0.25)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    np.testing.assert_array_equal(got[..., rot_dim:], x[..., rot_dim:])  # the unrotated part passes through


@pytest.mark.parametrize("mode", ["neox", "gptj"])
def test_rope_freq_factors(backend, ref, rng, mode):
    """Per-frequency divisors (llama.cpp's rope_freqs): each backend against
    the reference, and the reference against plain RoPE with theta's
    frequencies divided by hand."""
    x = rng.standard_normal((9, 3, 32)).astype(np.float32)
    pos = rng.integers(0, 9000, 9)
    ff = rng.uniform(1.0, 8.0, 12).astype(np.float32)
    want = ref.rope(x.copy(), pos, 500000.0, 24, mode, freq_scale=1.0, freq_factors=ff)
    got = backend.rope(x.copy(), pos, 500000.0, 24, mode, freq_scale=1.0, freq_factors=ff)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    assert not np.allclose(want, ref.rope(x.copy(), pos, 500000.0, 24, mode))  # the factors do change the result
    ones = ref.rope(x.copy(), pos, 500000.0, 24, mode, freq_factors=np.ones(12, np.float32))
    np.testing.assert_array_equal(ones, ref.rope(x.copy(), pos, 500000.0, 24, mode))
    with pytest.raises(ValueError, match="freq_factors"):
        backend.rope(x.copy(), pos, 500000.0, 24, mode, freq_factors=ff[:5])


def test_rope_reference_matches_hf_rotate_half(ref, rng):
    """Hugging Face's Llama: q * cos + rotate_half(q) * sin, cos/sin of pos * inv_freq repeated twice."""
    hd, theta = 16, 500000.0
    x = rng.standard_normal((4, 2, hd)).astype(np.float64)
    pos = np.array([0, 1, 7, 123])
    inv_freq = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
    emb = np.concatenate([pos[:, None] * inv_freq] * 2, axis=-1)[:, None, :]
    rot_half = np.concatenate([-x[..., hd // 2 :], x[..., : hd // 2]], axis=-1)
    want = x * np.cos(emb) + rot_half * np.sin(emb)
    got = ref.rope(x.astype(np.float32), pos, theta, hd, "neox")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rope_position_zero_is_identity(any_backend, rng):
    x = rng.standard_normal((1, 2, 8)).astype(np.float32)
    np.testing.assert_array_equal(any_backend.rope(x.copy(), [0], 10000.0, 8, "gptj"), x)


@pytest.mark.parametrize("n", [1, 31, 50000])
def test_elementwise(backend, ref, rng, n):
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    u = rng.standard_normal(n).astype(np.float32)
    kw = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backend.silu(x), ref.silu(x), **kw)
    np.testing.assert_allclose(backend.gelu(x, True), ref.gelu(x, True), **kw)
    np.testing.assert_allclose(backend.gelu(x, False), ref.gelu(x, False), **kw)
    np.testing.assert_allclose(backend.silu_mul(x, u), ref.silu_mul(x, u), **kw)
    np.testing.assert_allclose(backend.gelu_mul(x, u, True), ref.gelu_mul(x, u, True), **kw)
    np.testing.assert_allclose(backend.gelu_mul(x, u, False), ref.gelu_mul(x, u, False), **kw)
    np.testing.assert_array_equal(backend.add(x, u), x + u)


def test_gelu_reference_values(ref):
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0], dtype=np.float32)
    exact = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x]
    np.testing.assert_allclose(ref.gelu(x, False), exact, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ref.gelu(x, True), exact, atol=1e-3)  # tanh form approximates erf


@pytest.mark.parametrize("shape", [(1, 1), (4, 7), (2, 32000)])
def test_softmax(backend, ref, rng, shape):
    x = (rng.standard_normal(shape) * 10).astype(np.float32)
    y = backend.softmax(x)
    np.testing.assert_allclose(y, ref.softmax(x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
