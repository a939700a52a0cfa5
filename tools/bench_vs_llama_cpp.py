"""pocketlm's native engine next to llama.cpp and LiteRT-LM, on the same model, in one run.

    python tools/bench_vs_llama_cpp.py [--llama-bench PATH] [--threads 1 2] [--prompts 128 512]
                                       [--repeats 3] [--litertlm PATH] [--make-litertlm]
                                       [--int8-macs-per-cycle N] [--ghz F]

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

The race of three: SmolLM2-135M-Instruct in pocketlm (its Q8_0, Q4_0 and
Q4_1 GGUF), in llama.cpp (the same GGUF files) and in LiteRT-LM (the int8
.litertlm, litert-torch's dynamic_wi8_afp32 recipe, prefill_128 + decode, KV
cache 1024). All three start from the built-in Q4_1 GGUF: tools/
gguf_to_checkpoint.py turns it into an F32 Hugging Face checkpoint (in
build/bench/), pocketlm's converter writes the Q8_0 and Q4_0 GGUFs from that, and
litert-torch exports the .litertlm from it (--make-litertlm, 2-3 minutes and
about 3.6 GB of memory; default path build/bench/smollm2-135m-int8.litertlm).
LiteRT-LM is measured by litert_lm itself: its Benchmark (engine settings
with benchmarking on, num_prefill_tokens 128, num_decode_tokens 64,
max_num_tokens 1024, Backend.CPU(thread_count=N), cache_dir in build/bench/)
and the session's BenchmarkInfo prefill and decode tok/s, best of --repeats,
in a fresh process per thread count. pocketlm's own LiteRT engine runs the
same .litertlm graph on LiteRT's kernels through its C sessions as a fourth
line. Each figure is printed with its ratio to pocketlm's native engine on
the Q8_0 GGUF (the int8 weights' nearest GGUF) at the same thread count, and
next to the bandwidth limit of the bytes its decode step reads. A contender
that cannot run is skipped, saying why: llama.cpp when no llama-bench is found
and none can be built, LiteRT-LM when litert_lm or the .litertlm is missing.

Every table is printed once per --prompts length (128 and 512 tokens: the
prompt is prefilled in one batch by every engine; decode is the same 64 steps
from an empty cache). Prefill is also put against the int8 arithmetic limit:
the multiply-adds a prefill token does (the products' rows x columns and
attention's, from pocketlm's own count of the prefill) times tok/s, over the
ISA's int8 multiply-adds per cycle and core (AVX512-VNNI: one 512-bit vpdpbusd,
64; AVX2: one 256-bit vpmaddubsw pair, 32; arm64 sdot: 2 x 16; override with
--int8-macs-per-cycle) times the clock (/sys's cpuinfo_max_freq, else
/proc/cpuinfo's MHz; override with --ghz) times the threads.
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
BENCH = ROOT / "build" / "bench"  # the checkpoint, the .litertlm and LiteRT-LM's cache (not committed)
PROMPT, DECODE = 128, 64
KV_CACHE = 1024  # the .litertlm's KV cache, and LiteRT-LM's max_num_tokens
LITERTLM = BENCH / "smollm2-135m-int8.litertlm"
SMOL_CKPT = BENCH / "smollm2-135m-hf"

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


# GGML_NATIVE picks AMX on some machines where the binary then dies of SIGILL: name the ISA instead
LLAMA_CMAKE_ARGS = os.environ.get("LLAMA_CMAKE_ARGS", "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON")


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
                    "-DLLAMA_CURL=OFF", *LLAMA_CMAKE_ARGS.split(), "-DLLAMA_BUILD_TESTS=OFF",
                    "-DLLAMA_BUILD_SERVER=OFF"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(dest / "build"), "--target", "llama-bench", "-j", str(os.cpu_count())],
                   check=True, stdout=subprocess.DEVNULL)
    return dest / "build" / "bin" / "llama-bench"


def int8_macs_per_cycle() -> int:
    """int8 multiply-adds one core issues per cycle on the best ISA pocketlm's kernels use here."""
    flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith(("flags", "Features"))),
                 "").split()
    if "avx512_vnni" in flags:
        return 64
    if "avx2" in flags:
        return 32
    return 32 if "asimddp" in flags else 8


def clock_ghz() -> float:
    f = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if f.is_file():
        return int(f.read_text()) / 1e6
    mhz = [float(ln.split(":")[1]) for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("cpu MHz")]
    return max(mhz) / 1e3 if mhz else 1.0


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
    q8 = BENCH / "smollm2-135m-q8_0.gguf"
    if not q8.is_file():  # the same weights (the Q4_1 file's, dequantized) as the .litertlm, in Q8_0
        from pocketlm.genai.converter import ConversionConfig, convert_checkpoint

        convert_checkpoint(ConversionConfig(str(smollm2_checkpoint()), "safetensors", None, "cpu", str(BENCH),
                                            output_tflite_file=str(q8), attention_quant_bits=8,
                                            feedforward_quant_bits=8, embedding_quant_bits=8))
    out["SmolLM2-135M Q8_0"] = q8
    q4 = BENCH / "smollm2-135m-q4_0.gguf"
    if not q4.is_file():  # the same weights again in Q4_0 (the embedding table in Q8_0, as llama.cpp's Q4_0 keeps)
        from pocketlm.genai.converter import ConversionConfig, convert_checkpoint

        convert_checkpoint(ConversionConfig(str(smollm2_checkpoint()), "safetensors", None, "cpu", str(BENCH),
                                            output_tflite_file=str(q4), attention_quant_bits=4,
                                            feedforward_quant_bits=4, embedding_quant_bits=8))
    out["SmolLM2-135M Q4_0"] = q4
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


def smollm2_checkpoint() -> Path:
    """The built-in Q4_1 GGUF as an F32 Hugging Face checkpoint (tools/gguf_to_checkpoint.py)."""
    if not (SMOL_CKPT / "model.safetensors").is_file():
        from pocketlm.builtin import default_model_path

        import gguf_to_checkpoint

        gguf_to_checkpoint.convert(Path(default_model_path()), SMOL_CKPT)
    return SMOL_CKPT


RUN_EXPORT = """
import json, sys
from litert_torch.generative.export_hf import export
a = json.loads(sys.argv[1])
export.export(model=a["model"], output_dir=a["out"], prefill_lengths=[a["prefill"]], cache_length=a["cache"],
              quantization_recipe="dynamic_wi8_afp32")
"""


def make_litertlm(dest: Path) -> Path:
    """litert-torch's HF exporter on the checkpoint: int8 weights, prefill_128 + decode, a 1024-position cache.
    Without TensorFlow, its import of tensorflow.lite's flatbuffer schema is answered by ai_edge_litert's copy
    (as tools/make_litert_fixtures.py does)."""
    import importlib.util

    ckpt = smollm2_checkpoint()
    BENCH.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH) as tmp:
        env = dict(os.environ, PYTHONHASHSEED="0")
        if importlib.util.find_spec("tensorflow") is None:
            shim = Path(tmp) / "shim"
            for sub in ("tensorflow", "tensorflow/lite", "tensorflow/lite/python"):
                (shim / sub).mkdir(parents=True, exist_ok=True)
                (shim / sub / "__init__.py").touch()
            (shim / "tensorflow/lite/python/schema_py_generated.py").write_text(
                "from ai_edge_litert.schema_py_generated import *  # noqa: F401,F403\n")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")]))
        out = Path(tmp) / "out"
        args = dict(model=str(ckpt), out=str(out), prefill=PROMPT, cache=KV_CACHE)
        print(f"exporting {ckpt} to an int8 .litertlm with litert-torch (2-3 minutes) ...", file=sys.stderr)
        r = subprocess.run([sys.executable, "-c", RUN_EXPORT, json.dumps(args)], env=env, capture_output=True,
                           text=True)
        if r.returncode:
            sys.exit("litert-torch's export failed:\n" + (r.stdout + r.stderr)[-4000:])
        shutil.move(out / "model.litertlm", dest)
    return dest


# ---- LiteRT-LM ------------------------------------------------------------------------


def litert_lm_missing(path: Path) -> str | None:
    """Why LiteRT-LM cannot run here, or None."""
    import importlib.util

    if importlib.util.find_spec("litert_lm") is None:
        return "litert_lm is not importable (pip install litert-lm-api)"
    if not path.is_file():
        return f"{path} is missing (make it with --make-litertlm)"
    return None


def litert_lm_run(model: Path, threads: int, repeats: int) -> dict:
    """LiteRT-LM's own benchmark: engine settings with benchmarking on, exactly PROMPT prefill and DECODE decode
    tokens, the session's BenchmarkInfo; best of `repeats` engines."""
    import importlib.metadata

    import litert_lm

    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
    cache = BENCH / "litert-lm-cache"
    cache.mkdir(parents=True, exist_ok=True)
    best_pp = best_tg = 0.0
    info = None
    for _ in range(repeats):
        info = litert_lm.Benchmark(model_path=str(model), backend=litert_lm.Backend.CPU(thread_count=threads),
                                   prefill_tokens=PROMPT, decode_tokens=DECODE, max_num_tokens=KV_CACHE,
                                   cache_dir=str(cache)).run()
        best_pp = max(best_pp, info.last_prefill_tokens_per_second)
        best_tg = max(best_tg, info.last_decode_tokens_per_second)
    return {"pp": best_pp, "tg": best_tg, "pp_tokens": info.last_prefill_token_count,
            "tg_tokens": info.last_decode_token_count, "init_s": info.init_time_in_second,
            "version": importlib.metadata.version("litert-lm-api"), "peak_rss": peak_rss()}


def pocketlm_litert_run(model: Path, threads: int, repeats: int) -> dict:
    """pocketlm's LiteRT engine (the graph on LiteRT's kernels, driven by pocketlm's C sessions) on the
    .litertlm, counted as pocketlm_run counts: PROMPT tokens into an empty cache, then DECODE one-token steps."""
    import numpy as np

    from pocketlm.engine.litert import open_graph
    from pocketlm.engine.native import NativeTokens
    from pocketlm.model.litert_model import load_litertlm
    from pocketlm.sampling import Sampler

    graph = load_litertlm(model)[0]
    nm = open_graph(graph, graph.cache_length)
    ids = np.random.default_rng(0).integers(0, graph.vocab_size, PROMPT).astype(np.int32)
    best_pp = best_tg = 0.0
    for _ in range(repeats):
        t = None
        t = NativeTokens(nm, PROMPT + 1, "F16", Sampler(top_k=1), n_threads=threads)
        t.add(ids)
        s = t.generate()
        best_pp = max(best_pp, s.prefill_tokens / s.prefill_s)
        t = None
        t = NativeTokens(nm, 1 + DECODE + 1, "F16", Sampler(top_k=1), n_threads=threads)
        t.add(ids[:1])
        s = t.generate()
        best_tg = max(best_tg, (s.decode_tokens - 1) / s.decode_s)
    kv = graph.tflite.kv_cache
    kv_bytes = 2 * kv.n_layers * kv.n_kv_heads * kv.head_dim * kv.cache_length * np.dtype(kv.dtype).itemsize
    return {"pp": best_pp, "tg": best_tg, "graph_bytes": graph.size, "kv_bytes": int(kv_bytes),
            "kv": str(kv), "peak_rss": peak_rss()}


def in_fresh_process(flag: str, model: Path, threads: int, repeats: int) -> dict:
    r = subprocess.run([sys.executable, __file__, flag, str(model), str(threads), str(repeats), str(PROMPT)],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError((r.stdout + r.stderr).strip()[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


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
        pp_macs = s.prefill.flops / 2 / s.prefill_tokens
        # llama-bench's tg64: 64 one-token steps from an empty cache (here after a first token, the
        # prefill of one, as llama-bench's warm-up); the C loop samples 65 tokens and runs 64 of them
        t = None
        t = NativeTokens(nm, 1 + DECODE + 1, "F16", Sampler(top_k=1))
        t.add(ids[:1])
        s = t.generate()
        best_tg = max(best_tg, (s.decode_tokens - 1) / s.decode_s)
        step_bytes = (s.decode.weight_bytes + s.decode.kv_bytes) / max(1, s.decode.tokens)
    kv = (PROMPT + DECODE + 1) * 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * 2
    return {"pp": best_pp, "tg": best_tg, "step_bytes": step_bytes, "kv_bytes": kv, "pp_macs": pp_macs,
            "peak_rss": peak_rss()}


def peak_rss() -> int:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pocketlm_speeds(model: Path, threads: int, repeats: int) -> dict:
    """pocketlm_run in a fresh process, so its peak RSS is the run's own."""
    out = subprocess.run([sys.executable, __file__, "--one", str(model), str(threads), str(repeats), str(PROMPT)],
                         check=True, capture_output=True, text=True).stdout
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
    ap.add_argument("--prompts", type=int, nargs="+", default=[128, 512], help="prompt lengths (default 128 512)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--int8-macs-per-cycle", type=int, help="the ISA's int8 multiply-adds per cycle and core")
    ap.add_argument("--ghz", type=float, help="the clock the arithmetic limit assumes")
    ap.add_argument("--litertlm", type=Path, default=LITERTLM, help=f"the int8 .litertlm (default {LITERTLM})")
    ap.add_argument("--make-litertlm", action="store_true", help="export the .litertlm first if it is missing")
    ap.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--one-litert-lm", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--one-pocketlm-litert", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    global PROMPT
    for flag, fn in ((a.one, pocketlm_run), (a.one_litert_lm, litert_lm_run), (a.one_pocketlm_litert,
                                                                              pocketlm_litert_run)):
        if flag:
            PROMPT = int(flag[3])
            print(json.dumps(fn(Path(flag[0]), int(flag[1]), int(flag[2]))))
            return

    import platform

    import membw

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    a.macs = a.int8_macs_per_cycle or int8_macs_per_cycle()
    a.ghz = a.ghz or clock_ghz()
    print(f"machine: {cpu}, {os.cpu_count()} CPUs; prompts {a.prompts}, decode {DECODE}, LiteRT cache {KV_CACHE}; "
          f"int8 limit {a.macs} MACs/cycle/core at {a.ghz:.2f} GHz")
    skipped = []
    try:
        bench = find_llama_bench(a.llama_bench)
        print(f"llama.cpp: {bench}")
    except (OSError, subprocess.CalledProcessError, StopIteration) as e:
        bench = None
        skipped.append(f"llama.cpp: no llama-bench found and none could be built ({type(e).__name__}: {e})")
    if a.make_litertlm and not a.litertlm.is_file():
        make_litertlm(a.litertlm)
    litert_why = litert_lm_missing(a.litertlm)
    if litert_why:
        skipped.append(f"LiteRT-LM and pocketlm's LiteRT engine: {litert_why}")
    bandwidth = {t: membw.measure(256, t) for t in a.threads}
    print("memory read bandwidth: " + ", ".join(f"{bandwidth[t]:.1f} GB/s at {t} thread{'s' * (t > 1)}"
                                                 for t in a.threads))
    base_rss = python_baseline_rss()
    print(f"Python + numpy + pocketlm imported: {base_rss / 1e6:.0f} MB RSS before any model\n")
    for prompt in a.prompts:
        PROMPT = prompt
        print(f"\n==== prompt {PROMPT} tokens, decode {DECODE} ====")
        one_prompt(a, bench, bandwidth, litert_why, base_rss)
    if skipped:
        print("\nskipped:")
        for why in skipped:
            print(f"  {why}")


def one_prompt(a, bench, bandwidth: dict, litert_why: str | None, base_rss: int) -> None:
    head = (f"{'model':20} {'thr':>3}  {'prefill pocketlm / llama.cpp':>30}  {'decode pocketlm / llama.cpp':>29}  "
            f"{'decode vs bandwidth':>19}  floors")
    print(head)
    print("-" * len(head))
    results = []
    for name, path in models().items():
        for t in a.threads:
            ours = pocketlm_speeds(path, t, a.repeats)
            limit = bandwidth[t] * 1e9 / ours["step_bytes"]
            if bench is None:
                print(f"{name:20} {t:>3}  {ours['pp']:8.1f} / {'-':>8}         {ours['tg']:7.1f} / {'-':>7}"
                      f"          {ours['tg'] / limit:6.0%} of {limit:6.0f}/s  (llama.cpp skipped)")
                results.append((name, path, t, ours, None))
                continue
            pp, tg = llama_cpp_speeds(bench, path, t, a.repeats)
            f_tg, f_pp = FLOORS.get(name, (None, None))
            ok = f_tg is None or (ours["tg"] / tg >= f_tg and ours["pp"] / pp >= f_pp)
            print(f"{name:20} {t:>3}  {ours['pp']:8.1f} / {pp:8.1f} = {ours['pp'] / pp:4.2f}x  "
                  f"{ours['tg']:7.1f} / {tg:7.1f} = {ours['tg'] / tg:4.2f}x  "
                  f"{ours['tg'] / limit:6.0%} of {limit:6.0f}/s  "
                  + (f"{'met' if ok else 'MISSED'} (decode {f_tg}x, prefill {f_pp}x)" if f_tg else "-"))
            results.append((name, path, t, ours, (pp, tg)))
    print("\npeak RSS of the pocketlm process (limit: file + KV cache + 10% + 20 MB, the interpreter's own RSS "
          "not counted):")
    for name, path, t, ours, _ in results:
        size = path.stat().st_size
        limit = size + ours["kv_bytes"] + 0.1 * size + 20e6
        rss = ours["peak_rss"] - base_rss
        print(f"  {name:20} {t} thr: {rss / 1e6:7.1f} MB of {limit / 1e6:7.1f} MB "
              f"({'within' if rss <= limit else 'OVER'}; file {size / 1e6:.1f} MB)")
    race_of_three(results, a, bandwidth, litert_why, base_rss)


def race_of_three(results, a, bandwidth: dict, litert_why: str | None, base_rss: int) -> None:
    """SmolLM2-135M in every contender, side by side per thread count, each against pocketlm on the Q8_0 GGUF."""
    print(f"\nrace of three: SmolLM2-135M-Instruct, prompt {PROMPT}, decode {DECODE}; x = ratio to pocketlm's "
          "native engine on the Q8_0 GGUF at the same threads; decode against the bandwidth limit of the bytes a "
          "step reads, prefill against the int8 arithmetic limit (MACs a prefill token does x tok/s over "
          f"{a.macs} MACs/cycle x {a.ghz:.2f} GHz x threads)")
    head = (f"{'thr':>3}  {'contender':24} {'model file':22} {'prefill tok/s':>13} {'x':>6}  {'vs int8 limit':>13}  "
            f"{'decode tok/s':>12} {'x':>6}  {'decode vs bandwidth':>19}  {'peak RSS':>8}")
    print(head)
    print("-" * len(head))
    smol = {(name, t): (ours, cpp) for name, _, t, ours, cpp in results if name.startswith("SmolLM2")}
    for t in a.threads:
        ref = smol.get(("SmolLM2-135M Q8_0", t), (None,))[0]
        rows, notes = [], []
        for name in ("SmolLM2-135M Q8_0", "SmolLM2-135M Q4_0", "SmolLM2-135M Q4_1"):
            if (name, t) not in smol:
                continue
            ours, cpp = smol[(name, t)]
            lim = bandwidth[t] * 1e9 / ours["step_bytes"]
            q = name.split()[-1] + " GGUF"
            rows.append(("pocketlm (native)", q, ours["pp"], ours["tg"], lim, ours["peak_rss"] - base_rss))
            if cpp:
                rows.append(("llama.cpp", q, cpp[0], cpp[1], lim, None))
        if litert_why is None:
            lit = ours_lit = None
            try:
                lit = in_fresh_process("--one-litert-lm", a.litertlm, t, a.repeats)
            except RuntimeError as e:
                print(f"{t:>3}  LiteRT-LM failed: {e}")
            try:
                ours_lit = in_fresh_process("--one-pocketlm-litert", a.litertlm, t, a.repeats)
            except RuntimeError as e:
                print(f"{t:>3}  pocketlm's LiteRT engine failed: {e}")
            # a LiteRT decode step reads the int8 graph and the whole fixed-length cache
            step = (ours_lit or {}).get("graph_bytes", a.litertlm.stat().st_size) + (ours_lit or {}).get("kv_bytes", 0)
            lim = bandwidth[t] * 1e9 / step
            if lit:
                rows.append((f"LiteRT-LM {lit['version']}", "int8 .litertlm", lit["pp"], lit["tg"], lim,
                             lit["peak_rss"] - base_rss))
            if ours_lit:
                rows.append(("pocketlm (LiteRT engine)", "int8 .litertlm", ours_lit["pp"], ours_lit["tg"], lim,
                             ours_lit["peak_rss"] - base_rss))
            if lit:
                notes.append(f"{'':3}  (LiteRT-LM counted {lit['pp_tokens']} prefill and {lit['tg_tokens']} decode tokens; "
                      f"engine init {lit['init_s']:.2f} s; peak RSS {(lit['peak_rss'] - base_rss) / 1e6:.0f} MB "
                      "over the interpreter's)")
        macs = ref["pp_macs"] if ref else None  # the same model in every engine: the same work per token
        for who, file, pp, tg, lim, rss in rows:
            xp = f"{pp / ref['pp']:5.2f}x" if ref else "     -"
            xt = f"{tg / ref['tg']:5.2f}x" if ref else "     -"
            arith = f"{pp * macs / (a.macs * a.ghz * 1e9 * t):13.0%}" if macs else f"{'-':>13}"
            mem = f"{rss / 1e6:6.0f} MB" if rss is not None else f"{'-':>9}"
            print(f"{t:>3}  {who:24} {file:22} {pp:13.1f} {xp:>6}  {arith}  {tg:12.1f} {xt:>6}  "
                  f"{tg / lim:6.0%} of {lim:6.0f}/s  {mem}")
        for note in notes:
            print(note)


if __name__ == "__main__":
    main()
