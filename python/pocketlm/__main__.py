"""``python -m pocketlm``: what this install runs on, and a check that it works.

Prints the kernel backend chosen (and why, when native is missing), the CPU
features the native kernels use, and runs one decode-sized Q8_0 and Q4_0
GEMV on every backend that loads, checking each against the NumPy
reference and timing it.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from . import __version__, kernels


def main() -> int:
    print(f"pocketlm {__version__}")
    reason = kernels.native_unavailable_reason()
    if reason is None:
        native = kernels.get_backend("native")
        feats = ", ".join(k for k, v in native.cpu_features().items() if v) or "none (portable scalar kernels)"
        print(f"native kernels: {native.LIBRARY} (SIMD: {feats}; threads: {native.get_num_threads()})")
    else:
        print(f"native kernels: unavailable ({reason})")
    print(f"active backend: {kernels.active_backend().name}")

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
            t0 = time.perf_counter()
            reps = 20
            for _ in range(reps):
                y = backend.matmul(x, w, qtype)
            dt = (time.perf_counter() - t0) / reps
            err = float(np.max(np.abs(y - want)))
            good = err <= 1e-3 * float(np.max(np.abs(want)))
            ok &= good
            print(f"{qtype} GEMV {n}x{k} on {name:6}: {dt * 1e3:6.2f} ms, {w.nbytes / dt / 1e9:5.1f} GB/s, "
                  f"max |diff| vs reference {err:.2e} {'ok' if good else 'MISMATCH'}")
    return 0 if ok and run_builtin_model() else 1


def run_builtin_model(prompt: str = "What is the capital of France?") -> bool:
    """Greedy answer of the built-in SmolLM2-135M-Instruct, streamed, with tokens/s."""
    from .builtin import CHATML, default_model_path
    from .model.forward import KVCache
    from .model.loader import load_model
    from .tokenizer import StreamDecoder

    try:
        path = default_model_path()
    except FileNotFoundError as e:
        print(f"built-in model: skipped ({e})")
        return True
    model, tok, _ = load_model(path)
    print(f"built-in model: {path.name} ({model.cfg.arch}, {model.cfg.n_layers} layers, {model.weight_type})")
    print(f"> {prompt}")
    ids = tok.encode(CHATML.format(prompt=prompt))
    cache = KVCache(model.cfg, len(ids) + 64)
    t0 = time.perf_counter()
    logits = model.forward(ids, cache)
    t1 = time.perf_counter()
    stream, n = StreamDecoder(tok), 0
    for _ in range(64):
        token = int(np.argmax(logits[-1]))
        if token in tok.eos_ids:
            break
        print(stream.push(token), end="", flush=True)
        n += 1
        logits = model.forward([token], cache)
    t2 = time.perf_counter()
    print(f"\n[prefill {len(ids) / (t1 - t0):.0f} tok/s, decode {n / max(t2 - t1, 1e-9):.0f} tok/s]")
    return n > 0


if __name__ == "__main__":
    sys.exit(main())
