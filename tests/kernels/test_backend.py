"""Backend choice, the cffi binding's agreement with pocketlm.h, and the
thread cap."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pocketlm import kernels


def run_py(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


@pytest.fixture
def native():
    try:
        return kernels.get_backend("native")
    except ImportError as e:
        if os.environ.get("POCKETLM_REQUIRE_NATIVE") == "1":
            raise
        pytest.skip(str(e))


def test_env_var_picks_backend():
    for name in ("reference", "numba"):
        r = run_py("import pocketlm.kernels as k; print(k.active_backend().name)", POCKETLM_BACKEND=name)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == name


def test_unknown_backend_is_a_clear_error():
    r = run_py("import pocketlm.kernels as k; k.matmul", POCKETLM_BACKEND="cuda")
    assert r.returncode != 0 and "unknown kernel backend 'cuda'" in r.stderr


def test_missing_library_falls_back_to_numba_with_one_warning():
    code = """
        import warnings, numpy as np
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            import pocketlm.kernels as k
            k.matmul(np.ones(32, np.float32), np.ones((2, 32), np.float32), "F32")
            k.silu(np.ones(3, np.float32))
        msgs = [str(w.message) for w in caught if "pocketlm" in str(w.message)]
        print(k.active_backend().name, len(msgs), msgs[0])
    """
    r = run_py(code, POCKETLM_LIB="/nonexistent/libpocketlm.so", POCKETLM_BACKEND="")
    assert r.returncode == 0, r.stderr
    name, count, msg = r.stdout.strip().split(" ", 2)
    assert (name, count) == ("numba", "1")
    assert "/nonexistent/libpocketlm.so" in msg and "pip install -e ." in msg


def test_explicit_native_request_without_library_fails_loudly():
    r = run_py("import pocketlm.kernels as k; k.active_backend()", POCKETLM_LIB="/nonexistent/libpocketlm.so",
               POCKETLM_BACKEND="native")
    assert r.returncode != 0 and "NativeUnavailable" in r.stderr


def test_every_header_function_is_exported(native):
    """The cdef comes from pocketlm.h; each declared function must resolve in the library."""
    names = re.findall(r"\b(plm_\w+)\s*\(", native.cdef_source(native.header_path()))
    assert len(names) > 30
    for name in names:
        assert callable(getattr(native.lib, name)), name


def test_all_backends_expose_the_same_kernels():
    for name in ("reference", "numba"):
        mod = kernels.get_backend(name)
        missing = [k for k in kernels.KERNELS if not callable(getattr(mod, k, None))]
        assert not missing, (name, missing)


def test_native_thread_cap_limits_the_threads_that_run(native):
    w = np.zeros((4096, 1024), np.float32)
    x = np.zeros(1024, np.float32)
    prev = native.set_max_threads(1)
    try:
        native.reset_pool_peak()
        native.matmul(x, w, "F32", n_threads=8)
        assert native.pool_stats()["peak_threads"] == 1
        native.set_max_threads(2)
        native.reset_pool_peak()
        native.matmul(x, w, "F32", n_threads=8)
        assert native.pool_stats()["peak_threads"] == 2
        assert native.get_num_threads() <= 2
    finally:
        native.set_max_threads(prev)


def test_numba_thread_cap():
    nk = kernels.get_backend("numba")
    prev = nk.set_max_threads(1)
    try:
        assert nk.get_num_threads() == 1
        w = np.ones((8, 32), np.float32)
        np.testing.assert_allclose(nk.matmul(np.ones(32, np.float32), w, "F32", n_threads=4), np.full(8, 32.0))
        import numba

        assert numba.get_num_threads() == 1
    finally:
        nk.set_max_threads(prev)
