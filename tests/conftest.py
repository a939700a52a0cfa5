"""Shared pytest fixtures."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def program(tmp_path_factory):
    """tests/c/mp_api_check.c, built once per run against the installed libpocketlm
    (tests.genai.test_c_api.run_c runs it)."""
    pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
    from tests.genai.test_c_api import CC, build_program

    if CC is None:
        pytest.skip("no C compiler")
    return build_program(tmp_path_factory.mktemp("capi") / "mp_api_check")
