"""Shapes and dtypes a kernel cannot take raise a clear ValueError in every
backend, before anything is read or written."""

import numpy as np
import pytest


def test_block_row_length_not_multiple_of_32(any_backend):
    with pytest.raises(ValueError, match="multiple of 32"):
        any_backend.quantize(np.zeros((2, 33), np.float32), "Q4_0")
    w = any_backend.quantize(np.zeros((2, 64), np.float32), "Q8_0")
    with pytest.raises(ValueError, match="multiple of 32"):
        any_backend.matmul(np.zeros(48, np.float32), w, "Q8_0")


def test_weight_bytes_must_match_row_length(any_backend):
    w = any_backend.quantize(np.zeros((2, 64), np.float32), "Q4_1")
    with pytest.raises(ValueError, match="bytes"):
        any_backend.matmul(np.zeros(32, np.float32), w, "Q4_1")
    with pytest.raises(ValueError, match="stored as uint8"):
        any_backend.matmul(np.zeros(64, np.float32), w.astype(np.int16), "Q4_1")


def test_unknown_type_and_wrong_storage(any_backend):
    with pytest.raises(ValueError, match="unknown tensor type"):
        any_backend.quantize(np.zeros(32, np.float32), "Q5_K")
    with pytest.raises(ValueError, match="float16"):
        any_backend.matmul(np.zeros(8, np.float32), np.zeros((2, 8), np.float32), "F16")
    with pytest.raises(ValueError, match="real numbers"):
        any_backend.matmul(np.zeros(8, np.complex64), np.zeros((2, 8), np.float32), "F32")


def test_mismatched_inner_dimension(any_backend):
    with pytest.raises(ValueError, match="values"):
        any_backend.matmul(np.zeros(7, np.float32), np.zeros((2, 8), np.float32), "F32")


def test_ids_out_of_range(any_backend):
    w = np.zeros((4, 8), np.float32)
    with pytest.raises(ValueError, match="outside"):
        any_backend.get_rows(w, "F32", [0, 4])
    with pytest.raises(ValueError, match="outside"):
        any_backend.get_rows(w, "F32", [-1])


def test_attention_bad_shapes(any_backend):
    q = np.zeros((2, 4, 8), np.float32)
    kv = np.zeros((5, 2, 8), np.float32)
    with pytest.raises(ValueError, match="need keys"):
        any_backend.attention(q, kv, kv, 2, 1, 1.0)  # positions 1..2 need 3 keys
    with pytest.raises(ValueError, match="evenly"):
        any_backend.attention(np.zeros((1, 3, 8), np.float32), kv, kv, 1, 0, 1.0)
    with pytest.raises(ValueError, match="head_dim"):
        any_backend.attention(np.zeros((1, 4, 4), np.float32), kv, kv, 1, 0, 1.0)
    with pytest.raises(ValueError, match="outside the cache"):
        any_backend.attention(q, kv, kv, 6, 0, 1.0)
    with pytest.raises(ValueError, match="alibi"):
        any_backend.attention(q, kv, kv, 2, 0, 1.0, alibi_slopes=[1.0])


def test_rope_bad_arguments(any_backend):
    x = np.zeros((2, 1, 8), np.float32)
    with pytest.raises(ValueError, match="rot_dim"):
        any_backend.rope(x, [0, 1], 10000.0, rot_dim=5)
    with pytest.raises(ValueError, match="mode"):
        any_backend.rope(x, [0, 1], 10000.0, mode="spiral")
    with pytest.raises(ValueError, match="positions"):
        any_backend.rope(x, [0], 10000.0)
    with pytest.raises(ValueError, match="in place"):
        any_backend.rope(x.astype(np.float64), [0, 1], 10000.0)


def test_norm_and_elementwise_shapes(any_backend):
    with pytest.raises(ValueError, match="weight"):
        any_backend.rms_norm(np.zeros((2, 8), np.float32), np.ones(7, np.float32), 1e-6)
    with pytest.raises(ValueError, match="same shape"):
        any_backend.add(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="same shape"):
        any_backend.silu_mul(np.zeros(3, np.float32), np.zeros(4, np.float32))


def test_thread_count_must_be_positive(any_backend):
    with pytest.raises(ValueError, match="n_threads"):
        any_backend.matmul(np.zeros(8, np.float32), np.zeros((2, 8), np.float32), "F32", n_threads=0)
