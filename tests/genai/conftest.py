"""What the tests of MediaPipe's C API share: tests/c/mp_api_check.c, built
once per run against the installed libpocketlm."""

import pytest


@pytest.fixture(scope="session")
def program(tmp_path_factory):
    """The mp_api_check program (tests.genai.test_c_api.run_c runs it)."""
    pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
    from tests.genai.test_c_api import CC, build_program

    if CC is None:
        pytest.skip("no C compiler")
    return build_program(tmp_path_factory.mktemp("capi") / "mp_api_check")
