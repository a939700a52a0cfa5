#!/usr/bin/env python3
"""Measures this machine's memory read bandwidth: the limit a GEMV chases.

Streams a buffer much larger than the last-level cache with the native
library's plm_bench_read (the access pattern of a GEMV: each thread one
contiguous slice) for 1 and N threads and prints the best of several runs,
in GB/s (10^9 bytes per second). Without the native library it falls back
to NumPy (one thread), and says so.

    python tools/membw.py [--size-mb 512] [--threads 1 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))


def measure(size_mb: int = 512, threads: int = 1, repeats: int = 7) -> float:
    """Best read bandwidth in GB/s over `repeats` passes of a size_mb buffer."""
    buf = np.ones(size_mb * 1024 * 1024, dtype=np.uint8)
    try:
        from pocketlm.kernels import native

        def read():
            native.bench_read(buf, threads)
    except ImportError:
        if threads != 1:
            raise RuntimeError("multi-threaded measurement needs the native library") from None
        words = buf.view(np.uint64)

        def read():
            np.bitwise_xor.reduce(words)

    read()  # fault the pages in and warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        read()
        best = min(best, time.perf_counter() - t0)
    return buf.nbytes / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=512)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--json", action="store_true", help="print {threads: GB/s} as JSON")
    args = ap.parse_args()
    res = {t: measure(args.size_mb, t) for t in sorted(set(args.threads))}
    if args.json:
        print(json.dumps(res))
        return
    for t, gbs in res.items():
        print(f"memory read bandwidth, {t} thread{'s' if t > 1 else ''}: {gbs:6.1f} GB/s")


if __name__ == "__main__":
    main()
