"""Backends under test: every backend that loads here, native twice (SIMD
on and forced scalar), so both twins are compared against the reference.
CI builds the native library, so a missing one fails there rather than
silently shrinking the matrix (POCKETLM_REQUIRE_NATIVE=1)."""

import os

import pytest

from pocketlm import kernels

CANDIDATES = ["native", "native-scalar", "numba"]


def _load(name):
    base = name.split("-")[0]
    try:
        return kernels.get_backend(base)
    except ImportError as e:
        if os.environ.get("POCKETLM_REQUIRE_NATIVE") == "1":
            raise
        pytest.skip(f"{base} backend unavailable: {e}")


@pytest.fixture(params=CANDIDATES)
def backend(request):
    mod = _load(request.param)
    if request.param == "native-scalar":
        prev = mod.set_simd(False)
        yield mod
        mod.set_simd(prev)
    else:
        yield mod


@pytest.fixture(params=["reference"] + CANDIDATES[::2])
def any_backend(request):
    """Every backend, the reference included (for checks all must share)."""
    return _load(request.param)


@pytest.fixture
def ref():
    return kernels.get_backend("reference")
