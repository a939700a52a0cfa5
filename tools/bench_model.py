#!/usr/bin/env python3
"""Prefill and decode speed of the Python engine on a ~110M-parameter
Llama-shaped model with random weights (12 layers, hidden 768, vocab 16000),
in F32, Q8_0 and Q4_0, with decode's share of the memory-bandwidth limit:
weight bytes read per token x tokens/s / measured bandwidth.

    python tools/bench_model.py [--threads 2] [--types F32 Q8_0 Q4_0] [--prompt 128] [--decode 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, HERE)

from membw import measure as measure_bandwidth  # noqa: E402

from pocketlm import kernels  # noqa: E402
from pocketlm.model.config import config_from_dict  # noqa: E402
from pocketlm.model.forward import KVCache, Model  # noqa: E402

CONFIG = dict(model_type="llama", vocab_size=16000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
              num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=1024, rms_norm_eps=1e-5)


def random_tensors(cfg, seed=0):
    rng = np.random.default_rng(seed)
    h, f = cfg.hidden_size, cfg.intermediate_size

    def mat(n, k):
        return (rng.standard_normal((n, k), dtype=np.float32) / np.sqrt(k)).astype(np.float32)

    t = {"token_embd.weight": mat(cfg.vocab_size, h), "output.weight": mat(cfg.vocab_size, h),
         "output_norm.weight": np.ones(h, np.float32)}
    for i in range(cfg.n_layers):
        b = f"blk.{i}."
        t.update({b + "attn_norm.weight": np.ones(h, np.float32), b + "ffn_norm.weight": np.ones(h, np.float32),
                  b + "attn_q.weight": mat(cfg.q_dim, h), b + "attn_k.weight": mat(cfg.kv_dim, h),
                  b + "attn_v.weight": mat(cfg.kv_dim, h), b + "attn_output.weight": mat(h, cfg.q_dim),
                  b + "ffn_gate.weight": mat(f, h), b + "ffn_up.weight": mat(f, h), b + "ffn_down.weight": mat(h, f)})
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--types", nargs="+", default=["F32", "Q8_0", "Q4_0"])
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--decode", type=int, default=64)
    args = ap.parse_args()

    kernels.set_num_threads(args.threads)
    bw = measure_bandwidth(512, args.threads)
    cfg = config_from_dict(CONFIG)
    tensors = random_tensors(cfg)
    n_params = sum(v.size for v in tensors.values())
    print(f"model: Llama-shaped, {n_params / 1e6:.0f}M parameters; backend {kernels.active_backend().name}, "
          f"{args.threads} threads; memory bandwidth {bw:.1f} GB/s")
    print(f"{'type':5} {'prefill tok/s':>14} {'decode tok/s':>13} {'MB/token':>9} {'of bw':>6}")
    prompt = list(np.random.default_rng(1).integers(0, cfg.vocab_size, args.prompt))
    for wt in args.types:
        model = Model(cfg, tensors, weight_type=wt)
        # bytes a decode step streams: every matrix except the embedding table (one row of it is read)
        per_token = sum(w.data.nbytes for n, w in model.w.items() if hasattr(w, "data") and n != "token_embd.weight")
        model.forward(prompt[:8], KVCache(cfg, 16))  # warm-up
        cache = KVCache(cfg, args.prompt + args.decode + 1)
        t0 = time.perf_counter()
        logits = model.forward(prompt, cache)
        prefill = args.prompt / (time.perf_counter() - t0)
        tok = int(np.argmax(logits[-1]))
        t0 = time.perf_counter()
        for _ in range(args.decode):
            tok = int(np.argmax(model.forward([tok], cache)[-1]))
        decode = args.decode / (time.perf_counter() - t0)
        share = per_token * decode / (bw * 1e9)
        print(f"{wt:5} {prefill:14.1f} {decode:13.1f} {per_token / 1e6:9.1f} {share:6.0%}", flush=True)


if __name__ == "__main__":
    main()
