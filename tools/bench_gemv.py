#!/usr/bin/env python3
"""GEMV benchmark: Q8_0 and Q4_0 (and optionally more) weight matrices times
one activation vector, the product a decode step is made of, with the
weights coming from DRAM (copies cycled past the cache) as in a real decode.

Prints, per backend, shape, type and thread count, the weight bytes
streamed per second next to this machine's measured memory read bandwidth
(tools/membw.py) for the same thread count, and the share of it reached.

    python tools/bench_gemv.py                      # native and numba, all shapes
    python tools/bench_gemv.py --quick              # the largest shape only, fewer runs
    python tools/bench_gemv.py --types Q8_0 Q4_0 Q4_1 F16 --backends native
    python tools/bench_gemv.py --shapes 1536x576 49152x576   # SmolLM2-135M's MLP and classifier
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, HERE)

from membw import measure as measure_bandwidth  # noqa: E402

from pocketlm import kernels  # noqa: E402

SHAPES = [(2048, 2048), (4096, 4096), (11008, 4096)]  # (rows n, row length k)


# A decode step streams a whole model, far more than the last-level cache;
# cycling through copies of the matrix adding up to this much keeps each
# GEMV reading from DRAM, as there, rather than from a warm cache.
STREAM_BYTES = 256 << 20


def time_gemv(backend, x, w, qtype, threads, repeats):
    """Best and median seconds of one GEMV over `repeats` runs (after a warm-up)."""
    copies = [w] + [w.copy() for _ in range(max(0, -(-STREAM_BYTES // w.nbytes) - 1))]
    for c in copies:
        backend.matmul(x, c, qtype, n_threads=threads)
    runs = []
    for i in range(repeats):
        c = copies[i % len(copies)]
        t0 = time.perf_counter()
        backend.matmul(x, c, qtype, n_threads=threads)
        runs.append(time.perf_counter() - t0)
    return min(runs), statistics.median(runs)


def parse_shape(text: str) -> tuple[int, int]:
    """"ROWSxK" -> (rows, k); k must be a whole number of 32-value blocks."""
    try:
        n, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not ROWSxK, e.g. 1536x576") from None
    if n <= 0 or k <= 0 or k % 32:
        raise argparse.ArgumentTypeError(f"shape {text!r}: rows must be > 0 and K a positive multiple of 32")
    return n, k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["native", "numba"])
    ap.add_argument("--types", nargs="+", default=["Q8_0", "Q4_0"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="largest shape only, 15 runs each")
    ap.add_argument("--shapes", nargs="+", type=parse_shape, help="ROWSxK, e.g. 1536x576 (default: %s)"
                    % " ".join(f"{n}x{k}" for n, k in SHAPES))
    args = ap.parse_args()
    shapes = args.shapes or (SHAPES[-1:] if args.quick else SHAPES)
    repeats = 15 if args.quick else args.repeats

    bw = {t: measure_bandwidth(512, t) for t in args.threads}
    print("memory read bandwidth: " + ", ".join(f"{t} thread{'s' if t > 1 else ''} {g:.1f} GB/s" for t, g in bw.items()))
    rng = np.random.default_rng(0)
    ref = kernels.get_backend("reference")
    header = f"{'backend':8} {'type':5} {'shape':>11} {'thr':>3} {'best ms':>8} {'med ms':>8} {'GB/s':>6} {'of bw':>6}"
    print(header)
    print("-" * len(header))
    for name in args.backends:
        try:
            backend = kernels.get_backend(name)
        except ImportError as e:
            print(f"{name}: unavailable ({e})")
            continue
        for n, k in shapes:
            w32 = rng.standard_normal((n, k), dtype=np.float32)
            x = rng.standard_normal(k, dtype=np.float32)
            for qtype in args.types:
                w = ref.quantize(w32, qtype)
                for t in args.threads:
                    best, med = time_gemv(backend, x, w, qtype, t, repeats)
                    gbs = w.nbytes / best / 1e9
                    print(f"{name:8} {qtype:5} {n:>5}x{k:<5} {t:>3} {best * 1e3:8.3f} {med * 1e3:8.3f} "
                          f"{gbs:6.1f} {gbs / bw[t]:6.0%}", flush=True)


if __name__ == "__main__":
    main()
