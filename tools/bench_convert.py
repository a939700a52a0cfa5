#!/usr/bin/env python3
"""Conversion time and peak memory for a ~110M-parameter Llama checkpoint
(random F32 safetensors written to a temporary folder), per output type,
next to the bound the converter keeps to: 2x the output file + the largest
tensor. Each conversion runs in a fresh process so its peak RSS is its own.

    python tools/bench_convert.py [--types F32 Q8_0 Q4_0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))
sys.path.insert(0, str(HERE))

CHILD = r"""
import json, sys, time
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
folder, out, bits = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = {} if bits == 32 else dict(is_quantized=True, attention_quant_bits=bits, feedforward_quant_bits=bits,
                                  embedding_quant_bits=bits)
t0 = time.perf_counter()
path = convert_checkpoint(ConversionConfig(folder, "safetensors", None, "cpu", out, **opts))
# VmHWM, not getrusage: ru_maxrss survives exec and would report the parent's peak
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"seconds": time.perf_counter() - t0, "bytes": path.stat().st_size, "peak_rss": hwm * 1024}))
"""


def write_checkpoint(folder: Path) -> int:
    from bench_model import CONFIG, random_tensors
    from safetensors.numpy import save_file

    from pocketlm.model.config import config_from_dict

    cfg = config_from_dict(CONFIG)
    canon = random_tensors(cfg)
    hf = {}
    for name, arr in canon.items():  # canonical -> Hugging Face names
        n = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}.get(name, name)
        if n.startswith("blk."):
            _, i, rest = n.split(".", 2)
            rest = (rest.replace("attn_norm", "input_layernorm").replace("ffn_norm", "post_attention_layernorm")
                    .replace("attn_q", "self_attn.q_proj").replace("attn_k", "self_attn.k_proj")
                    .replace("attn_v", "self_attn.v_proj").replace("attn_output", "self_attn.o_proj")
                    .replace("ffn_gate", "mlp.gate_proj").replace("ffn_up", "mlp.up_proj")
                    .replace("ffn_down", "mlp.down_proj"))
            n = f"model.layers.{i}.{rest}"
        hf[n] = arr
    save_file(hf, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({**CONFIG, "bos_token_id": 1, "eos_token_id": 2}))
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.save(str(folder / "tokenizer.json"))
    return max(a.nbytes for a in canon.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", nargs="+", default=["F32", "Q8_0", "Q4_0"])
    args = ap.parse_args()
    bits = {"F32": 32, "Q8_0": 8, "Q4_0": 4}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ckpt"
        folder.mkdir()
        largest = write_checkpoint(folder)
        size_in = (folder / "model.safetensors").stat().st_size
        print(f"checkpoint: {size_in / 1e6:.0f} MB F32 safetensors, largest tensor {largest / 1e6:.0f} MB")
        print(f"{'type':5} {'seconds':>8} {'output MB':>10} {'peak RSS MB':>12} {'bound MB':>9}")
        env = {**os.environ, "PYTHONPATH": str(HERE.parent / "python")}
        for t in args.types:
            r = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(Path(tmp) / t), str(bits[t])],
                               capture_output=True, text=True, env=env)
            if r.returncode != 0:
                sys.exit(f"conversion to {t} failed:\n{r.stderr}")
            m = json.loads(r.stdout.strip().splitlines()[-1])
            bound = 2 * m["bytes"] + largest
            print(f"{t:5} {m['seconds']:8.1f} {m['bytes'] / 1e6:10.0f} {m['peak_rss'] / 1e6:12.0f} {bound / 1e6:9.0f}"
                  f"{'' if m['peak_rss'] <= bound else '  over the bound'}", flush=True)


if __name__ == "__main__":
    main()
