"""pytest-benchmark of the decode-step GEMV: Q8_0 and Q4_0 weights at
2048x2048, 4096x4096 and 11008x4096, 1 and 2 threads, native and Numba.

Weights are cycled through copies past the last-level cache, so they come
from DRAM as in a decode step. Each run records, in the benchmark's extra_info, the GB/s of weights
streamed and the share of the measured memory bandwidth (tools/membw.py);
they are printed at the end of the session. Under --benchmark-disable (the
test suite) each case runs once as a correctness smoke test.
tools/bench_gemv.py is the same measurement as a standalone table.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))

from membw import measure as measure_bandwidth  # noqa: E402

from pocketlm import kernels  # noqa: E402

SHAPES = [(2048, 2048), (4096, 4096), (11008, 4096)]
_results: list[str] = []
_bandwidth: dict[int, float] = {}


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(0)
    ref = kernels.get_backend("reference")
    cache = {}

    def get(n, k, qtype):
        if (n, k, qtype) not in cache:
            cache[(n, k, qtype)] = ref.quantize(rng.standard_normal((n, k), dtype=np.float32), qtype)
        return cache[(n, k, qtype)]

    return get


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0"])
@pytest.mark.parametrize("n,k", SHAPES, ids=[f"{n}x{k}" for n, k in SHAPES])
@pytest.mark.parametrize("backend_name", ["native", "numba"])
def test_gemv(benchmark, weights, backend_name, n, k, qtype, threads):
    try:
        backend = kernels.get_backend(backend_name)
    except ImportError as e:
        pytest.skip(str(e))
    w = weights(n, k, qtype)
    x = np.random.default_rng(1).standard_normal(k, dtype=np.float32)
    if benchmark.enabled:
        # cycle through copies past the last-level cache: a decode step streams
        # a whole model from DRAM, not one warm matrix
        copies = [w] + [w.copy() for _ in range(max(0, -(-(256 << 20) // w.nbytes) - 1))]
        turn = iter(range(10**9))

        def setup():
            return (x, copies[next(turn) % len(copies)], qtype), {"n_threads": threads}

        y = benchmark.pedantic(backend.matmul, setup=setup, rounds=40, warmup_rounds=len(copies))
        y = backend.matmul(x, w, qtype, n_threads=threads)
    else:
        y = benchmark(backend.matmul, x, w, qtype, n_threads=threads)
    ref = kernels.get_backend("reference")
    np.testing.assert_allclose(y[:64], ref.matmul(x, w[:64], qtype), rtol=1e-3, atol=1e-3)
    if benchmark.enabled and benchmark.stats:
        if threads not in _bandwidth:
            _bandwidth[threads] = measure_bandwidth(512, threads)
        gbs = w.nbytes / benchmark.stats.stats.min / 1e9
        share = gbs / _bandwidth[threads]
        benchmark.extra_info.update(gb_per_s=round(gbs, 2), bandwidth_gb_per_s=round(_bandwidth[threads], 2),
                                    share_of_bandwidth=round(share, 3))
        _results.append(f"{backend_name:6} {qtype} {n}x{k} {threads} thr: {gbs:5.1f} GB/s = {share:4.0%} of "
                        f"{_bandwidth[threads]:.1f} GB/s measured bandwidth")


def teardown_module(module):
    if _results:
        print("\nGEMV weight streaming (from DRAM) vs measured memory bandwidth:")
        print("\n".join(_results))
