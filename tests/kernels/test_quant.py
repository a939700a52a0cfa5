"""Quantization must produce GGUF's bytes: compared with the gguf package's
own quantize/dequantize on the same floats, in every backend."""

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as G

from pocketlm.model.quant import QUANT_TYPES

BLOCK_TYPES = {"Q8_0": G.Q8_0, "Q4_0": G.Q4_0, "Q4_1": G.Q4_1}


def awkward_rows(rng, k=256):
    rows = [
        rng.standard_normal(k),
        rng.standard_normal(k) * 1e-3,
        rng.uniform(-100, 100, k),
        np.zeros(k),  # d = 0 blocks
        np.full(k, 0.37),  # constant blocks (Q4_1: max == min)
        np.round(rng.standard_normal(k) * 4) / 4,  # many exact ties in x / d
        np.r_[np.full(k // 2, -2.0), np.full(k // 2, 2.0)],  # largest magnitude appears twice, both signs
        rng.standard_normal(k) * np.where(rng.random(k) < 0.05, 50, 1),  # outliers
    ]
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("qname", BLOCK_TYPES)
def test_quantize_bytes_equal_gguf(any_backend, rng, qname):
    x = awkward_rows(rng)
    ours = any_backend.quantize(x, qname)
    theirs = gguf.quants.quantize(x, BLOCK_TYPES[qname])
    assert ours.dtype == np.uint8 and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("qname", BLOCK_TYPES)
def test_dequantize_equals_gguf(any_backend, rng, qname):
    q = gguf.quants.quantize(awkward_rows(rng), BLOCK_TYPES[qname])
    np.testing.assert_array_equal(any_backend.dequantize(q, qname), gguf.quants.dequantize(q, BLOCK_TYPES[qname]))


@pytest.mark.parametrize("qname,max_rel_err", [("Q8_0", 0.01), ("Q4_0", 0.15), ("Q4_1", 0.1)])
def test_roundtrip_error_is_bounded(any_backend, rng, qname, max_rel_err):
    x = rng.standard_normal((4, 512)).astype(np.float32)
    back = any_backend.dequantize(any_backend.quantize(x, qname), qname)
    rel = np.linalg.norm(back - x) / np.linalg.norm(x)
    assert rel < max_rel_err


def test_f16_and_f32_storage(any_backend, rng):
    x = rng.standard_normal((3, 40)).astype(np.float32)
    np.testing.assert_array_equal(any_backend.quantize(x, "F32"), x)
    h = any_backend.quantize(x, "F16")
    assert h.dtype == np.float16
    np.testing.assert_array_equal(h, x.astype(np.float16))
    np.testing.assert_array_equal(any_backend.dequantize(h, "F16"), x.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("qname", list(QUANT_TYPES))
def test_get_rows_matches_dequantized_rows(backend, ref, rng, qname):
    w = rng.standard_normal((11, 64)).astype(np.float32)
    wq = ref.quantize(w, qname)
    ids = [10, 0, 3, 3]
    np.testing.assert_array_equal(backend.get_rows(wq, qname, ids), ref.dequantize(wq, qname)[ids])


def test_single_row_vector_roundtrip(any_backend, rng):
    x = rng.standard_normal(64).astype(np.float32)
    q = any_backend.quantize(x, "Q8_0")
    assert q.shape == (68,)
    assert any_backend.dequantize(q, "Q8_0").shape == (64,)
