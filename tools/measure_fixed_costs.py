#!/usr/bin/env python3
"""Measures the fixed cost a layer of llama.cpp's and pocketlm's decode on this machine: the constants
`llama.cpp.layer_s_host` and `pocketlm.layer_s_host` of pocketlm.device.runtimes.

    python tools/measure_fixed_costs.py [--threads 1] [--repeats 5] [--layers 2 26]

Two Llamas that differ only in their layer count (hidden 64, 4 heads, MLP 128, vocab 512, random weights,
Q8_0: the matrices are a few KB, so a step is its fixed costs) are converted by pocketlm and decoded 64 tokens
from an empty cache by `llama-bench -n 64` and by pocketlm's C engine (as tools/bench_vs_llama_cpp.py runs
both), best of --repeats. The step time's growth over the extra layers is the cost a layer; what is left at
the smaller count less its layers is the cost a token (sampling, the classifier, the calls). Printed next to
the constants the estimate uses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import bench_vs_llama_cpp as race  # noqa: E402


def tiny_llama(layers: int) -> Path:
    """A Q8_0 GGUF of a tiny Llama with `layers` layers (cached in ~/.cache/pocketlm/bench)."""
    path = race.CACHE / "bench" / f"llama-fixed-{layers}l-q8_0.gguf"
    if path.is_file():
        return path
    folder = race.CACHE / "bench" / f"llama-fixed-{layers}l"
    if not (folder / "config.json").is_file():
        from tests.fixtures import checkpoints
        from tests.fixtures.tokenizers import train_byte_level_bpe

        checkpoints.llama(folder, vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                          num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024)
        train_byte_level_bpe(folder, vocab_size=512)
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint

    convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(path.parent),
                                        output_tflite_file=str(path), attention_quant_bits=8,
                                        feedforward_quant_bits=8, embedding_quant_bits=8))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--layers", type=int, nargs=2, default=(2, 26), metavar=("FEW", "MANY"))
    ap.add_argument("--llama-bench", help="llama-bench binary (default: as tools/bench_vs_llama_cpp.py finds it)")
    a = ap.parse_args(argv)
    few, many = sorted(a.layers)
    if few < 1 or many == few:
        ap.error("--layers takes two different positive layer counts")
    from pocketlm.device.runtimes import CONSTANTS

    files = {n: tiny_llama(n) for n in (few, many)}
    step = {"llama.cpp": {}, "pocketlm": {}}
    try:
        bench = race.find_llama_bench(a.llama_bench)
    except (OSError, RuntimeError, SystemExit) as e:
        bench = None
        print(f"llama.cpp skipped: {e}")
    for _ in range(a.repeats):  # the engines alternate, so a busy moment falls on both
        for n, path in files.items():
            if bench is not None:
                _, tg = race.llama_cpp_speeds(bench, path, a.threads, 1)
                step["llama.cpp"][n] = min(step["llama.cpp"].get(n, 1e9), 1 / tg)
            tg = race.pocketlm_run(path, a.threads, 1)["tg"]
            step["pocketlm"][n] = min(step["pocketlm"].get(n, 1e9), 1 / tg)
    print(f"decode step of a tiny Llama, {a.threads} thread(s), best of {a.repeats}:")
    for runtime, s in step.items():
        if not s:
            continue
        layer = (s[many] - s[few]) / (many - few)
        token = s[few] - few * layer
        const = CONSTANTS[f"{runtime}.layer_s_host"].value
        print(f"  {runtime:9}  {few} layers {s[few] * 1e6:7.1f} us, {many} layers {s[many] * 1e6:7.1f} us: "
              f"{layer * 1e6:5.2f} us a layer (runtimes: {const * 1e6:.2f}), {token * 1e6:6.1f} us a token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
