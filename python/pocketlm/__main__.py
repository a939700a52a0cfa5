"""``python -m pocketlm``: the demo. Runs the built-in SmolLM2-135M-Instruct
through the public task API, exactly as an Android app would (options
builder, createFromOptions, generateResponseAsync with a result listener),
streaming the answer and printing the measured speed.

``python -m pocketlm --check`` instead checks the kernels: the backend in
use, the CPU features, and one decode-sized Q8_0 / Q4_0 GEMV per backend
against the NumPy reference, timed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np

from . import __version__, kernels

DEMO_PROMPT = "Give me three tips for writing fast code on a phone."


def backend_line() -> str:
    reason = kernels.native_unavailable_reason()
    if reason is None:
        native = kernels.get_backend("native")
        feats = ", ".join(k for k, v in native.cpu_features().items() if v) or "portable scalar kernels"
        return f"native kernels ({feats}; {native.get_num_threads()} threads)"
    return f"Numba kernels (native unavailable: {reason})"


def demo(prompt: str = DEMO_PROMPT, max_tokens: int = 512) -> bool:
    from .builtin import default_model_path
    from .tasks import LlmInference, LlmInferenceOptions

    try:
        model_path = default_model_path()
    except FileNotFoundError as e:
        print(f"demo skipped: {e}")
        return False
    finished = threading.Event()

    def on_result(partial: str, done: bool) -> None:
        print(partial, end="", flush=True)
        if done:
            finished.set()

    def on_error(error: BaseException) -> None:
        print(f"\nerror: {error}", file=sys.stderr)
        finished.set()

    options = (LlmInferenceOptions.builder()
               .setModelPath(str(model_path))
               .setMaxTokens(max_tokens)
               .setTopK(40)
               .setTemperature(0.8)
               .setRandomSeed(0)
               .setResultListener(on_result)
               .setErrorListener(on_error)
               .build())
    t0 = time.perf_counter()
    with LlmInference.createFromOptions(None, options) as llm:
        load_s = time.perf_counter() - t0
        print(f"model: {model_path.name} (loaded in {load_s:.2f} s)")
        print(f"> {prompt}")
        future = llm.generateResponseAsync(prompt)
        finished.wait()
        text = future.result()
        print(f"\n[{llm.last_stats.summary()}]")
    return bool(text.strip())


def check_kernels() -> bool:
    rng = np.random.default_rng(0)
    n, k = 4096, 4096
    ref = kernels.get_backend("reference")
    x = rng.standard_normal(k, dtype=np.float32)
    w32 = rng.standard_normal((n, k), dtype=np.float32)
    ok = True
    for qtype in ("Q8_0", "Q4_0"):
        w = ref.quantize(w32, qtype)
        want = ref.matmul(x, w, qtype)
        for name in ("native", "numba"):
            try:
                backend = kernels.get_backend(name)
            except ImportError:
                continue
            backend.matmul(x, w, qtype)  # warm-up (Numba compiles here on first use)
            reps = 20
            t0 = time.perf_counter()
            for _ in range(reps):
                y = backend.matmul(x, w, qtype)
            dt = (time.perf_counter() - t0) / reps
            err = float(np.max(np.abs(y - want)))
            good = err <= 1e-3 * float(np.max(np.abs(want)))
            ok &= good
            print(f"{qtype} GEMV {n}x{k} on {name:6}: {dt * 1e3:6.2f} ms, {w.nbytes / dt / 1e9:5.1f} GB/s, "
                  f"max |diff| vs reference {err:.2e} {'ok' if good else 'MISMATCH'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pocketlm", description="pocketlm demo on the built-in model")
    p.add_argument("prompt", nargs="?", default=DEMO_PROMPT)
    p.add_argument("--check", action="store_true", help="check and time the kernels instead")
    a = p.parse_args(argv)
    print(f"pocketlm {__version__} on {backend_line()}")
    if a.check:
        return 0 if check_kernels() else 1
    return 0 if demo(a.prompt) else 1


if __name__ == "__main__":
    sys.exit(main())
