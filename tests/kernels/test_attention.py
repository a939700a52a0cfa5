"""Causal attention over a KV cache against the reference; the reference
against a loop written straight from the definition in pocketlm.h."""

import math

import numpy as np
import pytest

CASES = [  # (n_q, n_kv, q_pos0, n_heads, n_kv_heads, head_dim)
    (1, 1, 0, 1, 1, 8),  # a first token
    (1, 300, 299, 8, 8, 64),  # decode, GQA ratio 1
    (300, 300, 0, 4, 2, 32),  # prefill of 300, ratio 2
    (20, 45, 25, 16, 2, 64),  # a follow-up chunk, ratio 8
    (5, 9, 4, 3, 1, 16),  # odd head count, multi-query
    (6, 6, 0, 7, 7, 80),
]


def naive(q, k, v, n_kv, q_pos0, scale, softcap=0.0, window=0, alibi=None):
    n_q, n_heads, hd = q.shape
    group = n_heads // k.shape[1]
    out = np.zeros((n_q, n_heads, hd))
    for i in range(n_q):
        pos = q_pos0 + i
        for h in range(n_heads):
            keys = [j for j in range(n_kv) if j <= pos and (window == 0 or pos - j < window)]
            s = []
            for j in keys:
                v_ = scale * float(np.dot(q[i, h].astype(np.float64), k[j, h // group]))
                if softcap:
                    v_ = softcap * math.tanh(v_ / softcap)
                if alibi is not None:
                    v_ += alibi[h] * (j - pos)
                s.append(v_)
            p = np.exp(np.array(s) - max(s))
            p /= p.sum()
            out[i, h] = sum(pj * v[j, h // group] for pj, j in zip(p, keys))
    return out


def make(rng, n_q, n_ctx, n_heads, n_kv_heads, hd):
    q = rng.standard_normal((n_q, n_heads, hd)).astype(np.float32)
    k = rng.standard_normal((n_ctx, n_kv_heads, hd)).astype(np.float32)
    v = rng.standard_normal((n_ctx, n_kv_heads, hd)).astype(np.float32)
    return q, k, v


@pytest.mark.parametrize("n_q,n_kv,q_pos0,n_heads,n_kv_heads,hd", CASES)
@pytest.mark.parametrize("variant", ["plain", "softcap", "window", "alibi"])
def test_attention_matches_reference(backend, ref, rng, n_q, n_kv, q_pos0, n_heads, n_kv_heads, hd, variant):
    q, k, v = make(rng, n_q, n_kv + 3, n_heads, n_kv_heads, hd)  # a cache longer than n_kv: the rest is not read
    k[n_kv:] = np.nan
    v[n_kv:] = np.nan
    kw = dict(softcap=0.0, window=0, alibi_slopes=None)
    if variant == "softcap":
        kw["softcap"] = 2.0
    elif variant == "window":
        kw["window"] = 4
    elif variant == "alibi":
        kw["alibi_slopes"] = 2.0 ** (-8.0 * np.arange(1, n_heads + 1) / n_heads)
    scale = 1 / math.sqrt(hd)
    want = ref.attention(q, k, v, n_kv, q_pos0, scale, **kw)
    got = backend.attention(q, k, v, n_kv, q_pos0, scale, n_threads=2, **kw)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"softcap": 1.5}, {"window": 3}, {"alibi_slopes": [0.5, 0.25, 0.125, 1.0]}])
def test_reference_attention_matches_definition(ref, rng, kw):
    q, k, v = make(rng, 4, 7, 4, 2, 8)
    want = naive(q, k, v, 7, 3, 0.3, kw.get("softcap", 0.0), kw.get("window", 0),
                 None if "alibi_slopes" not in kw else np.array(kw["alibi_slopes"]))
    np.testing.assert_allclose(ref.attention(q, k, v, 7, 3, 0.3, **kw), want, rtol=1e-5, atol=1e-6)


def test_first_position_returns_its_value(any_backend, rng):
    q, k, v = make(rng, 1, 4, 2, 1, 8)
    out = any_backend.attention(q, k, v, 1, 0, 1.0)
    np.testing.assert_allclose(out[0], np.repeat(v[0], 2, axis=0), rtol=1e-6)
