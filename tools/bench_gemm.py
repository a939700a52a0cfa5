#!/usr/bin/env python3
"""Prefill GEMM benchmark: a batch of activation rows (a prompt) times Q8_0 / Q4_0 / Q4_1 weight matrices,
through the C kernels' plm_matmul, on each x86 tile this CPU runs: AMX's tiles where the OS grants them, the
AVX512-VNNI tile, the AVX2 tile (the levels alternate in one process, best of --repeats). Prints the int8
multiply-adds a second next to the VNNI limit (64 a cycle and core at the clock given).

    python tools/bench_gemm.py [--rows 512] [--shapes 1536x576 576x1536] [--types Q8_0 Q4_0 Q4_1]
                               [--threads 1] [--repeats 7] [--ghz 2.6]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=512, help="activation rows (prompt tokens)")
    ap.add_argument("--shapes", nargs="+", default=["1536x576", "576x1536", "4096x4096"], help="N x K")
    ap.add_argument("--types", nargs="+", default=["Q8_0", "Q4_0", "Q4_1"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--ghz", type=float, default=2.6, help="the clock the VNNI limit assumes")
    a = ap.parse_args(argv)
    from pocketlm.kernels import native
    from pocketlm.model import quant

    feats = native.cpu_features()
    tiles = []
    if feats["amx"]:
        tiles.append(("AMX", 2, True))
    if feats["avx512vnni"]:
        tiles.append(("AVX512-VNNI", 2, False))
    if feats["avx2"]:
        tiles.append(("AVX2", 1, False))
    if not tiles:
        print("no x86 tile on this CPU (the scalar twin only)")
        return 0
    limit = 64 * a.ghz * 1e9 * a.threads
    rng = np.random.default_rng(0)
    print(f"{a.rows} activation rows, {a.threads} thread(s), best of {a.repeats}; VNNI limit {limit / 1e9:.0f} G "
          f"int8 MACs/s; tiles: {', '.join(t[0] for t in tiles)}")
    for shape in a.shapes:
        n, k = (int(v) for v in shape.lower().split("x"))
        x = rng.standard_normal((a.rows, k), dtype=np.float32)
        for tname in a.types:
            w = native.quantize(rng.standard_normal((n, k), dtype=np.float32), getattr(quant, tname))
            best = {name: float("inf") for name, _, _ in tiles}
            outs = {}
            for _ in range(a.repeats):
                for name, level, amx in tiles:
                    prev_s, prev_a = native.set_simd(level), native.set_amx(amx)
                    t0 = time.perf_counter()
                    outs[name] = native.matmul(x, w, getattr(quant, tname), a.threads)
                    best[name] = min(best[name], time.perf_counter() - t0)
                    native.set_simd(prev_s)
                    native.set_amx(prev_a)
            same = all(np.array_equal(outs[tiles[0][0]], o) for o in outs.values())
            cells = "  ".join(f"{name} {a.rows * n * k / best[name] / 1e9:6.1f} G ({a.rows * n * k / best[name] / limit:4.0%})"
                              for name, _, _ in tiles)
            print(f"  {tname:5} {n:5}x{k:<5} {cells}  {'same floats' if same else 'FLOATS DIFFER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
