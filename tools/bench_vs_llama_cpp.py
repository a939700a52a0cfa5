"""pocketlm's native engine next to llama.cpp, on the same GGUF files, in one run.

    python tools/bench_vs_llama_cpp.py [--llama-bench PATH] [--threads 1 2] [--repeats 3]

llama.cpp runs as `llama-bench -p 128 -n 64` (found on PATH, in $LLAMA_BENCH,
or built once from the llama.cpp that PyPI's llama-cpp-python sdist vendors,
into ~/.cache/pocketlm/). pocketlm runs the same work through its C engine:
a 128-token prompt prefilled in one batch, and 64 tokens decoded by the C
generate loop (no stop tokens); as llama-bench counts them, prefill is 128
tokens into an empty cache in one batch and decode is 64 one-token steps from
an empty cache, each figure (both tools') the best of --repeats runs. The models: the built-in SmolLM2-135M-Instruct (Q4_1, as
llama.cpp's converter and quantizer wrote it) and an ~86M-parameter Llama
(hidden 768, 12 layers, vocab 512, random weights) converted by pocketlm to
Q8_0 and to Q4_0.

Printed per model and thread count: prefill and decode tokens/s of both,
their ratio, the decode speed's share of the memory-bandwidth limit (bytes a
decode step reads, weights and KV cache, against tools/membw.py's measured
read bandwidth at that thread count) and pocketlm's peak RSS next to its
limit (file + KV cache + 10% + 20 MB), measured in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
CACHE = Path(os.environ.get("POCKETLM_CACHE", Path.home() / ".cache" / "pocketlm"))
PROMPT, DECODE = 128, 64

# floors of the native engine issue: (decode, prefill) ratios to llama.cpp
FLOORS = {"SmolLM2-135M Q4_1": (1.3, 1.0), "86M Llama Q8_0": (1.0, 0.8), "86M Llama Q4_0": (1.0, 0.8)}


# ---- llama.cpp ----------------------------------------------------------------------


def find_llama_bench(explicit: str | None) -> Path:
    for cand in (explicit, os.environ.get("LLAMA_BENCH"), shutil.which("llama-bench")):
        if cand and Path(cand).is_file():
            return Path(cand)
    built = sorted(CACHE.glob("llama.cpp-*/build/bin/llama-bench"))
    if built:
        return built[-1]
    return build_llama_bench()


def build_llama_bench() -> Path:
    """Builds llama-bench from the llama.cpp inside llama-cpp-python's sdist (about 10 minutes on 2 cores)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        print("fetching the llama-cpp-python sdist (it vendors llama.cpp) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                        "llama-cpp-python", "-d", tmp], check=True)
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        version = sdist.name[len("llama_cpp_python-"):-len(".tar.gz")]
        with tarfile.open(sdist) as tf:
            tf.extractall(tmp, filter="data")
        src = Path(tmp) / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
        dest = CACHE / f"llama.cpp-{version}"
        shutil.copytree(src, dest, dirs_exist_ok=True)
    print(f"building llama-bench in {dest} ...", file=sys.stderr)
    subprocess.run(["cmake", "-S", str(dest), "-B", str(dest / "build"), "-DCMAKE_BUILD_TYPE=Release",
                    "-DLLAMA_CURL=OFF", "-DGGML_NATIVE=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(dest / "build"), "--target", "llama-bench", "-j", str(os.cpu_count())],
                   check=True, stdout=subprocess.DEVNULL)
    return dest / "build" / "bin" / "llama-bench"


def llama_cpp_speeds(bench: Path, model: Path, threads: int, repeats: int) -> tuple[float, float]:
    out = subprocess.run([str(bench), "-m", str(model), "-p", str(PROMPT), "-n", str(DECODE), "-t", str(threads),
                          "-r", str(repeats), "-o", "json"], check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)

    def best(r):  # the best repetition, as pocketlm's figure is its best run
        return max(r.get("samples_ts") or [r["avg_ts"]])

    pp = next(best(r) for r in rows if r["n_prompt"] == PROMPT and r["n_gen"] == 0)
    tg = next(best(r) for r in rows if r["n_gen"] == DECODE and r["n_prompt"] == 0)
    return pp, tg


# ---- models ---------------------------------------------------------------------------


def models() -> dict[str, Path]:
    from pocketlm.builtin import default_model_path

    out = {"SmolLM2-135M Q4_1": Path(default_model_path())}
    folder = CACHE / "bench" / "llama86m"
    for name, bits in (("86M Llama Q8_0", 8), ("86M Llama Q4_0", 4)):
        path = CACHE / "bench" / f"llama86m-{'q8_0' if bits == 8 else 'q4_0'}.gguf"
        if not path.is_file():
            if not (folder / "config.json").is_file():
                from tests.fixtures import checkpoints
                from tests.fixtures.tokenizers import train_byte_level_bpe

                checkpoints.llama(folder, vocab_size=512, hidden_size=768, intermediate_size=2048,
                                  num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
                                  max_position_embeddings=1024)
                train_byte_level_bpe(folder, vocab_size=512)
            from pocketlm.genai.converter import ConversionConfig, convert_checkpoint

            convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(path.parent),
                                                output_tflite_file=str(path), attention_quant_bits=bits,
                                                feedforward_quant_bits=bits, embedding_quant_bits=8))
        out[name] = path
    return out


# ---- pocketlm -------------------------------------------------------------------------


def pocketlm_run(model: Path, threads: int, repeats: int) -> dict:
    """Best prefill / decode tok/s of `repeats` runs, and what a decode step read (one process: the C
    engine maps the file itself; the Python loader, tokenizer included, is not involved)."""
    import numpy as np

    from pocketlm.engine.native import NativeModel, NativeTokens, _lib
    from pocketlm.kernels import native
    from pocketlm.sampling import Sampler

    native.set_num_threads(threads)
    nm = NativeModel.open(model)
    cfg = _lib()[1].plm_model_get_config(nm.handle)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, PROMPT).astype(np.int32)
    best_pp = best_tg = 0.0
    t = None
    for _ in range(repeats):
        # llama-bench's pp128: 128 tokens into an empty cache, one batch
        t = None  # one session at a time
        t = NativeTokens(nm, PROMPT, "F16", Sampler(top_k=1))
        t.add(ids)
        s = t.generate()
        best_pp = max(best_pp, s.prefill_tokens / s.prefill_s)
        # llama-bench's tg64: 64 one-token steps from an empty cache (here after a first token, the
        # prefill of one, as llama-bench's warm-up); the C loop samples 65 tokens and runs 64 of them
        t = None
        t = NativeTokens(nm, 1 + DECODE + 1, "F16", Sampler(top_k=1))
        t.add(ids[:1])
        s = t.generate()
        best_tg = max(best_tg, (s.decode_tokens - 1) / s.decode_s)
        step_bytes = (s.decode.weight_bytes + s.decode.kv_bytes) / max(1, s.decode.tokens)
    kv = (PROMPT + DECODE + 1) * 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * 2
    return {"pp": best_pp, "tg": best_tg, "step_bytes": step_bytes, "kv_bytes": kv, "peak_rss": peak_rss()}


def peak_rss() -> int:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pocketlm_speeds(model: Path, threads: int, repeats: int) -> dict:
    """pocketlm_run in a fresh process, so its peak RSS is the run's own."""
    out = subprocess.run([sys.executable, __file__, "--one", str(model), str(threads), str(repeats)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def python_baseline_rss() -> int:
    """Peak RSS of a process that imports numpy and pocketlm and does nothing: the interpreter's share."""
    code = ("import sys; sys.path.insert(0, %r); import numpy, pocketlm.engine.native, "
            "pocketlm.kernels.native, pocketlm.sampling; from bench_vs_llama_cpp import peak_rss; print(peak_rss())"
            % str(ROOT / "tools"))
    return int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


# ---- main -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llama-bench", help="llama-bench binary (default: PATH, $LLAMA_BENCH, or build it)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(pocketlm_run(Path(a.one[0]), int(a.one[1]), int(a.one[2]))))
        return

    import membw

    bench = find_llama_bench(a.llama_bench)
    print(f"llama.cpp: {bench}")
    bandwidth = {t: membw.measure(256, t) for t in a.threads}
    print("memory read bandwidth: " + ", ".join(f"{bandwidth[t]:.1f} GB/s at {t} thread{'s' * (t > 1)}"
                                                 for t in a.threads))
    base_rss = python_baseline_rss()
    print(f"Python + numpy + pocketlm imported: {base_rss / 1e6:.0f} MB RSS before any model\n")
    head = (f"{'model':20} {'thr':>3}  {'prefill pocketlm / llama.cpp':>30}  {'decode pocketlm / llama.cpp':>29}  "
            f"{'decode vs bandwidth':>19}  floors")
    print(head)
    print("-" * len(head))
    results = []
    for name, path in models().items():
        for t in a.threads:
            ours = pocketlm_speeds(path, t, a.repeats)
            pp, tg = llama_cpp_speeds(bench, path, t, a.repeats)
            limit = bandwidth[t] * 1e9 / ours["step_bytes"]
            f_tg, f_pp = FLOORS[name]
            ok = ours["tg"] / tg >= f_tg and ours["pp"] / pp >= f_pp
            print(f"{name:20} {t:>3}  {ours['pp']:8.1f} / {pp:8.1f} = {ours['pp'] / pp:4.2f}x  "
                  f"{ours['tg']:7.1f} / {tg:7.1f} = {ours['tg'] / tg:4.2f}x  "
                  f"{ours['tg'] / limit:6.0%} of {limit:6.0f}/s  "
                  f"{'met' if ok else 'MISSED'} (decode {f_tg}x, prefill {f_pp}x)")
            results.append((name, path, t, ours))
    print("\npeak RSS of the pocketlm process (limit: file + KV cache + 10% + 20 MB, the interpreter's own RSS "
          "not counted):")
    for name, path, t, ours in results:
        size = path.stat().st_size
        limit = size + ours["kv_bytes"] + 0.1 * size + 20e6
        rss = ours["peak_rss"] - base_rss
        print(f"  {name:20} {t} thr: {rss / 1e6:7.1f} MB of {limit / 1e6:7.1f} MB "
              f"({'within' if rss <= limit else 'OVER'}; file {size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
