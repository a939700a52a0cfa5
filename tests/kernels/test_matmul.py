"""Products of every weight type against the NumPy reference, on awkward
shapes, and the reference itself against plain float arithmetic."""

import numpy as np
import pytest

from pocketlm.model.quant import QUANT_TYPES

SHAPES = [  # (m, n, k)
    (1, 1, 32),
    (1, 37, 96),
    (3, 64, 256),
    (7, 5, 4096),
    (300, 33, 64),
]


@pytest.mark.parametrize("qname", list(QUANT_TYPES))
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matmul_matches_reference(backend, ref, rng, qname, m, n, k):
    w = ref.quantize(rng.standard_normal((n, k)).astype(np.float32), qname)
    x = rng.standard_normal((m, k)).astype(np.float32)
    want = ref.matmul(x, w, qname)
    got = backend.matmul(x, w, qname, n_threads=2)
    assert got.shape == (m, n) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.parametrize("qname", list(QUANT_TYPES))
def test_matmul_vector_input_gives_vector(backend, ref, rng, qname):
    w = ref.quantize(rng.standard_normal((9, 64)).astype(np.float32), qname)
    x = rng.standard_normal(64).astype(np.float32)
    y = backend.matmul(x, w, qname)
    assert y.shape == (9,)
    np.testing.assert_allclose(y, ref.matmul(x[None], w, qname)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_matmul_same_result_for_any_thread_count(backend, ref, rng, threads):
    w = ref.quantize(rng.standard_normal((129, 128)).astype(np.float32), "Q4_0")
    x = rng.standard_normal((2, 128)).astype(np.float32)
    np.testing.assert_array_equal(backend.matmul(x, w, "Q4_0", n_threads=threads), backend.matmul(x, w, "Q4_0", n_threads=1))


@pytest.mark.parametrize("qname", ["Q8_0", "Q4_0", "Q4_1"])
def test_reference_block_product_is_exact_arithmetic_on_quantized_values(ref, rng, qname):
    """The reference's integer-dot contract equals float64 arithmetic on the
    dequantized weights and the Q8_0-dequantized activations."""
    w = ref.quantize(rng.standard_normal((17, 256)).astype(np.float32), qname)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    xq = ref.dequantize(ref.quantize(x, "Q8_0"), "Q8_0").astype(np.float64)
    exact = xq @ ref.dequantize(w, qname).astype(np.float64).T
    np.testing.assert_allclose(ref.matmul(x, w, qname), exact, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("qname,tol", [("F32", 1e-5), ("F16", 2e-3), ("Q8_0", 0.02), ("Q4_0", 0.2), ("Q4_1", 0.15)])
def test_quantized_product_close_to_float_product(ref, rng, qname, tol):
    w = rng.standard_normal((64, 512)).astype(np.float32)
    x = rng.standard_normal((4, 512)).astype(np.float32)
    exact = x @ w.T
    got = ref.matmul(x, ref.quantize(w, qname), qname)
    assert np.linalg.norm(got - exact) / np.linalg.norm(exact) < tol
