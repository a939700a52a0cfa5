"""The C engine end to end from a C program (native/tests/test_engine.c, built
by CMake): its own checks pass, and the greedy tokens it prints for a prompt
are the Python engine's for the same file and prompt."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pocketlm.model.forward import KVCache
from pocketlm.model.loader import load_model
from tests.fixtures.llama_cpp import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
PROMPT = [1, 17, 200, 33, 5, 99, 250, 7]  # test_engine.c's


def _binary() -> Path:
    exe = ROOT / "build" / "cmake" / "native" / "test_engine"
    if not exe.is_file():
        if os.environ.get("POCKETLM_REQUIRE_NATIVE") == "1":
            pytest.fail(f"{exe} was not built (POCKETLM_REQUIRE_NATIVE=1)")
        pytest.skip("the C tests are not built (pip install -e . builds them through CMake)")
    return exe


@pytest.mark.parametrize("name", ["llama", "gemma2", "phi2", "gpt2", "falcon-7b"])
def test_c_program_generates_what_the_python_engine_generates(name):
    path = FIXTURES / f"{name}.gguf"
    n = 12
    run = subprocess.run([str(_binary()), str(path), str(n)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    line = next(l for l in run.stdout.splitlines() if l.startswith("greedy:"))
    got = [int(t) for t in line.split(":")[1].split()]

    model, _, _ = load_model(path)
    cache = KVCache(model.cfg, len(PROMPT) + n, "F16")
    logits, want = model.forward(PROMPT, cache, last_only=True), []
    for _ in range(n):
        want.append(int(np.argmax(logits[-1])))
        logits = model.forward([want[-1]], cache, last_only=True)
    assert got == want
