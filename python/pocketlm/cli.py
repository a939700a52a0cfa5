"""The `pocketlm` command line: `generate`, `chat` and `info` over the task
API, and `convert` / `bundle`, MediaPipe's two model-preparation steps (its
option names in kebab case). Commands that generate print prefill and decode
tokens/s at the end; `info --stats` measures them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .tasks._generation import IllegalStateError


# convert's options of one target only (dest -> option); they default to None so a given one is seen
_GGUF_ONLY = {"ckpt_format": "--ckpt-format", "model_type": "--model-type", "backend": "--backend",
              "output_file": "--output-file", "float": "--float", "asymmetric": "--asymmetric",
              "attention_quant_bits": "--attention-quant-bits", "feedforward_quant_bits": "--feedforward-quant-bits",
              "embedding_quant_bits": "--embedding-quant-bits", "vocab_model_file": "--vocab-model-file",
              "lora_ckpt": "--lora-ckpt", "lora_rank": "--lora-rank", "lora_output_file": "--lora-output-file"}
_LITERTLM_ONLY = {"quantization_recipe": "--quantization-recipe (--quantize)", "prefill_lengths": "--prefill-lengths",
                  "cache_length": "--cache-length (--kv-cache-length)"}


def _refuse_options(a, options: dict[str, str], why: str) -> None:
    given = [opt for dest, opt in options.items() if getattr(a, dest) is not None and getattr(a, dest) is not False]
    if given:
        raise ValueError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --to {a.to} ({why})")


def _convert(a) -> None:
    if a.to == "litertlm":
        _refuse_options(a, _GGUF_ONLY, "options of the GGUF converter; litert-torch reads the architecture, "
                                       "weights and tokenizer from the checkpoint folder")
        from .genai import litert_export

        def given(value, default):
            return default if value is None else value

        path = litert_export.export_litertlm(
            a.input_ckpt, a.output_dir, quantize=given(a.quantization_recipe, litert_export.DEFAULT_RECIPE),
            prefill_lengths=given(a.prefill_lengths, litert_export.DEFAULT_PREFILL_LENGTHS),
            cache_length=given(a.cache_length, litert_export.DEFAULT_CACHE_LENGTH))
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return
    _refuse_options(a, _LITERTLM_ONLY, "litert-torch's exporter options")
    from .genai.converter import ConversionConfig, convert_checkpoint

    cfg = ConversionConfig(input_ckpt=a.input_ckpt, ckpt_format=a.ckpt_format or "safetensors",
                           model_type=a.model_type, backend=a.backend or "cpu", output_dir=a.output_dir,
                           is_quantized=not a.float, is_symmetric=not a.asymmetric,
                           attention_quant_bits=a.attention_quant_bits or 8,
                           feedforward_quant_bits=a.feedforward_quant_bits or 8,
                           embedding_quant_bits=a.embedding_quant_bits or 8, vocab_model_file=a.vocab_model_file or "",
                           output_tflite_file=a.output_file, lora_ckpt=a.lora_ckpt, lora_rank=a.lora_rank,
                           lora_output_tflite_file=a.lora_output_file)
    path = convert_checkpoint(cfg)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if cfg.lora_ckpt:
        print(f"wrote {cfg.lora_output_tflite_file} (LoRA adapter, rank {cfg.lora_rank})")


def _lengths(text: str) -> tuple[int, ...]:
    """--prefill-lengths: comma-separated, as litert-torch's exporter takes them."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated token counts: {text!r}") from None


def _convert_lora(a) -> None:
    """A PEFT adapter -> a GGUF LoRA adapter for an existing model file or folder."""
    from .model.config import load_config
    from .model.loader import load_model
    from .model.lora import load_adapter, write_adapter_gguf

    cfg = load_config(a.model) if Path(a.model).is_dir() else load_model(a.model)[0].cfg
    adapter = load_adapter(a.adapter, cfg, model_layout="llama.cpp")  # the layout model files have
    if a.lora_rank is not None:
        adapter.check_ranks([a.lora_rank], "lora_rank")
    write_adapter_gguf(a.output, cfg, adapter)
    print(f"wrote {a.output}: {adapter.describe()}")


def _bundle(a) -> None:
    from .genai.bundler import BundleConfig, create_bundle

    path = create_bundle(BundleConfig(tflite_model=a.model, tokenizer_model=a.tokenizer, start_token=a.start_token,
                                      stop_tokens=a.stop_token, output_filename=a.output,
                                      enable_bytes_to_unicode_mapping=a.bytes_to_unicode,
                                      system_prompt=a.system_prompt, prompt_prefix=a.prompt_prefix,
                                      prompt_suffix=a.prompt_suffix))
    print(f"wrote {path}")


def _model_path(a) -> str:
    if a.model:
        return a.model
    from .builtin import default_model_path

    return str(default_model_path())


def _open(a):
    """(LlmInference, session) from the common options, the way the Android API builds them."""
    from .tasks import (
        LlmInference,
        LlmInferenceOptions,
        LlmInferenceSession,
        LlmInferenceSessionOptions,
        PromptTemplates,
    )

    options = (LlmInferenceOptions.builder().setModelPath(_model_path(a)).setMaxTokens(a.max_tokens)
               .setTopK(a.top_k).setTemperature(a.temperature).setRandomSeed(a.seed).build())
    llm = LlmInference.createFromOptions(None, options, tokenizer=a.tokenizer)
    for note in llm.engine.notes:
        print(f"[{note}]", file=sys.stderr)
    b = (LlmInferenceSessionOptions.builder().setTopK(a.top_k).setTopP(a.top_p).setTemperature(a.temperature)
         .setRandomSeed(a.seed).setLoraPath(a.lora))
    if a.raw:
        b.setPromptTemplates(PromptTemplates())
    return llm, LlmInferenceSession.createFromOptions(llm, b.build())


def _stream(session, out) -> str:
    future = session.generateResponseAsync(lambda partial, done: print(partial, end="\n" if done else "",
                                                                       file=out, flush=True))
    try:
        return future.result()
    except KeyboardInterrupt:  # Ctrl-C stops the answer, not the program
        session.cancelGenerateResponseAsync()
        return future.result()


def _generate(a) -> None:
    llm, session = _open(a)
    with llm:
        session.addQueryChunk(a.prompt)
        _stream(session, sys.stdout)
        print(f"[{session.last_stats.summary()}]", file=sys.stderr)


def _chat(a) -> None:
    from .tasks import LlmInferenceSession, PromptTooLongError

    llm, session = _open(a)
    print(f"chatting with {llm.engine.model_path.name} (maxTokens {a.max_tokens}); empty line or Ctrl-D ends",
          file=sys.stderr)
    with llm:
        while True:
            try:
                line = input("> ")
            except EOFError:
                break
            if not line.strip():
                break
            try:
                session.addQueryChunk(line)
            except PromptTooLongError as e:
                if session.n_tokens == 0:
                    raise
                print(f"[context full ({e}); starting a new conversation]", file=sys.stderr)
                session.close()
                session = LlmInferenceSession.createFromOptions(llm, session.getSessionOptions())
                session.addQueryChunk(line)
            _stream(session, sys.stdout)
            print(f"[{session.last_stats.summary()}; context {session.n_tokens}/{a.max_tokens} tokens]",
                  file=sys.stderr)


def _row(key: str, value: str) -> None:
    first, *rest = str(value).split("\n")
    print(f"{key:18} {first}")
    for line in rest:
        print(f"{'':18} {line}")


def _info(a) -> None:
    from .engine.base import Engine, describe
    from .model.litert_info import describe_litert, litert_kind

    path = _model_path(a)
    if litert_kind(path):  # a file LiteRT runs: read with its formats' schemas, never loaded into a runtime
        for key, value in describe_litert(path):
            _row(key, value)
        if not a.stats:
            return
    engine = Engine(path, max_tokens=a.max_tokens)
    if not litert_kind(path):
        for key, value in describe(engine).items():
            _row(key, value)
    if a.stats:
        import threading

        from .sampling import Sampler

        session = engine.new_session(Sampler(top_k=1), None)
        session.add_query_chunk(" ".join(["hello"] * min(64, a.max_tokens // 2)))
        stop, pieces = threading.Event(), []

        def count(piece):  # 32 decode steps are enough for a steady figure
            pieces.append(piece)
            if len(pieces) >= 32:
                stop.set()

        t0 = time.perf_counter()
        session.generate(count, stop)
        print(f"{'speed':18} {session.last_stats.summary()} (greedy, {time.perf_counter() - t0:.1f} s)")


def _devices(a) -> None:
    from .device import list_profiles, load_profile

    print(f"{'profile':18} {'phone':64} {'RAM':>6} {'app budget':>10} {'threads':>7} {'GB/s':>6} "
          f"{'int8 GOPS':>9} {'fp32 GFLOPS':>11}")
    for name in list_profiles():
        p = load_profile(name)
        print(f"{name:18} {p.display_name:64} {p.ram_bytes / 2**30:5.0f}G {p.app_memory_budget / 2**30:9.1f}G "
              f"{p.threads:7} {p.memory_bandwidth_gbps:6.1f} {p.peak_int8_gops:9.0f} {p.peak_fp32_gflops:11.0f}")


def _fit(a) -> None:
    import json as _json

    from .device import fit_profiles, shape_from_config, shape_from_litert, shape_from_model
    from .device.runtimes import LITERT_PREFILL_SIGNATURES, weights_of_model
    from .model.litert_info import litert_kind

    signatures = LITERT_PREFILL_SIGNATURES
    max_tokens = 512 if a.max_tokens is None else a.max_tokens  # a LiteRT file's is its graph's
    if a.config:
        from .model.config import load_config

        if a.model:
            raise ValueError("give --config or --model, not both")
        shape, title = shape_from_config(load_config(a.config)), str(a.config)
        runtime, weights = a.runtime or "litert", a.weights or "int8"
    else:
        path = _model_path(a)
        if litert_kind(path):  # the shape, weights, cache and prefill signatures are the graph's own
            fit = shape_from_litert(path)
            shape, title, signatures, max_tokens = fit.shape, Path(path).name, fit.prefill_signatures, fit.cache_length
            runtime, weights = a.runtime or "litert", a.weights or fit.weights
            if runtime != "litert":
                raise ValueError(f"--runtime {runtime}: {path} runs only on LiteRT (--runtime litert)")
            if weights != fit.weights:
                raise ValueError(f"--weights {weights}: {path} stores its weights as {fit.weights}")
            if a.max_tokens is not None and a.max_tokens != fit.cache_length:
                raise ValueError(f"--max-tokens {a.max_tokens}: {path}'s KV cache is fixed in the graph at "
                                 f"{fit.cache_length} positions (--max-tokens {fit.cache_length})")
        else:
            from .engine.base import Engine

            engine = Engine(path, max_tokens=max_tokens)
            shape, title = shape_from_model(engine.model), engine.model_path.name
            runtime = a.runtime or "pocketlm"
            weights = a.weights or weights_of_model(engine.model)
    rows = fit_profiles(shape, weights, runtime, max_tokens, a.prompt_tokens, a.decode_tokens,
                        prefill_signatures=signatures)
    if a.json:
        print(_json.dumps({"model": title, "runtime": runtime, "weights": weights, "max_tokens": max_tokens,
                           "prompt_tokens": a.prompt_tokens, "decode_tokens": a.decode_tokens,
                           "profiles": [r.as_dict() for r in rows]}, indent=1))
        return
    print(f"{title}: {runtime}, {weights} weights, KV cache {max_tokens}, prefill {a.prompt_tokens} tokens, "
          f"decode {a.decode_tokens}")
    print(f"{'profile':18} {'fits':5} {'needed':>9} {'allowed':>9} {'prefill tok/s':>14} {'decode tok/s':>13} "
          f"{'first token':>11}")
    from .device import load_profile

    plot_rows = []
    for r in rows:
        budget = load_profile(r.profile).app_memory_budget
        plot_rows.append((r.profile, r.fits, r.memory_bytes, budget, r))
        print(f"{r.profile:18} {'yes' if r.fits else 'NO':5} {r.memory_bytes / 2**30:8.2f}G {budget / 2**30:8.2f}G "
              f"{r.prefill_tokens_per_s:14.0f} {r.decode_tokens_per_s:13.1f} {r.time_to_first_token_s * 1e3:9.0f}ms")
    if a.plot:
        _plot(plot_rows, title, a.plot)
        print(f"wrote {a.plot}")


def _plot(rows, title: str, out: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'pocketlm[plot]'") from None
    names = [r[0] for r in rows]
    fig, (m, s) = plt.subplots(1, 2, figsize=(11, 4))
    m.barh(names, [r[3] / 2**30 for r in rows], color="#ddd", label="app budget")
    m.barh(names, [r[2] / 2**30 for r in rows], color=["#4a4" if r[1] else "#c44" for r in rows], height=0.5,
           label="needed")
    m.set_xlabel("GB")
    m.set_title("memory: needed vs allowed")
    m.legend()
    s.barh(names, [r[4].decode_tokens_per_s for r in rows], color="#48c")
    s.set_xlabel("estimated decode tokens/s")
    s.set_title("speed")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def _add_generation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="GGUF file, .task bundle, .litertlm, .tflite or checkpoint folder "
                                                 "(default: the built-in SmolLM2-135M-Instruct)")
    p.add_argument("--tokenizer", default=None, help="a bare .tflite model's tokenizer.model / tokenizer.json "
                                                     "(default: the one beside it)")
    p.add_argument("--max-tokens", type=int, default=512, help="input + output tokens (maxTokens)")
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    p.add_argument("--seed", type=int, default=0, help="randomSeed")
    p.add_argument("--raw", action="store_true", help="send text as is, without the model's turn templates")
    p.add_argument("--lora", default=None, help="a LoRA adapter (loraPath): PEFT folder or file, or GGUF adapter")
    p.add_argument("--stats", action="store_true", help="print prefill / decode tokens/s (always printed)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketlm", description="Run on-device LLMs on a desktop, as on a phone.")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="stream the response to one prompt")
    g.add_argument("prompt")
    _add_generation_options(g)
    g.set_defaults(run=_generate)

    ch = sub.add_parser("chat", help="a multi-turn conversation on one session")
    _add_generation_options(ch)
    ch.set_defaults(run=_chat)

    i = sub.add_parser("info", help="architecture, parameters, weight types, size, context, tokenizer; for the "
                                    "files LiteRT runs, sections, metadata, signatures, KV cache and ops")
    i.add_argument("model", nargs="?", default=None, help="default: the built-in model")
    i.add_argument("--max-tokens", type=int, default=512, help="KV cache length for --stats")
    i.add_argument("--stats", action="store_true", help="also measure prefill and decode tokens/s")
    i.set_defaults(run=_info)

    d = sub.add_parser("devices", help="the simulated phones (device profiles)")
    d.set_defaults(run=_devices)

    f = sub.add_parser("fit", help="does the model fit each phone, and how fast would it run there")
    f.add_argument("--model", default=None, help="a model file (default: the built-in model); its runtime is "
                                                  "pocketlm unless --runtime says otherwise (a LiteRT file: litert)")
    f.add_argument("--config", default=None, help="a Hugging Face config.json: estimate without the weights")
    f.add_argument("--weights", default=None, choices=["int8", "int4", "fp16", "fp32"],
                   help="weight type (--config: default int8; --model: the file's)")
    f.add_argument("--runtime", default=None, choices=["litert", "llama.cpp", "pocketlm"],
                   help="the phone's runtime (--config: default litert; --model: pocketlm, a LiteRT file's litert)")
    f.add_argument("--max-tokens", type=int, default=None,
                   help="KV cache length (default 512; a LiteRT file: its graph's fixed cache, the only one it takes)")
    f.add_argument("--prompt-tokens", type=int, default=128, help="prefill length")
    f.add_argument("--decode-tokens", type=int, default=128, help="decode steps after the prompt")
    f.add_argument("--json", action="store_true", help="print the estimate as JSON")
    f.add_argument("--plot", default=None, metavar="OUT.png", help="also draw it (needs matplotlib)")
    f.set_defaults(run=_fit)

    c = sub.add_parser("convert", help="Hugging Face checkpoint -> pocketlm model file (GGUF), or with --to litertlm "
                                       "the .litertlm a phone runs, by litert-torch's exporter")
    c.add_argument("--to", default="gguf", choices=["gguf", "litertlm"],
                   help="gguf: pocketlm's converter (MediaPipe's options below); litertlm: litert-torch's HF exporter, "
                        "writing OUTPUT_DIR/model.litertlm (pip install 'pocketlm[litert-convert]'; its options last)")
    c.add_argument("--input-ckpt", required=True, help="checkpoint folder, file, or glob like 'model*.safetensors' "
                                                       "(--to litertlm: a folder)")
    c.add_argument("--ckpt-format", default=None, choices=["safetensors", "pytorch"], help="default safetensors")
    c.add_argument("--model-type", default=None, help="GEMMA_2B, PHI_2, ... or LLAMA, GPT2, ...; default: config.json")
    c.add_argument("--backend", default=None, choices=["cpu", "gpu"], help="default cpu")
    c.add_argument("--output-dir", required=True)
    c.add_argument("--output-file", default=None,
                   help="model file to write (output_tflite_file; default OUTPUT_DIR/model.tflite, a GGUF file)")
    c.add_argument("--float", action="store_true",
                   help="keep F32 weights (is_quantized=False); default: the *-quant-bits, 8 as in MediaPipe")
    c.add_argument("--asymmetric", action="store_true", help="4-bit weights as Q4_1 rather than Q4_0")
    for group in ("attention", "feedforward", "embedding"):
        c.add_argument(f"--{group}-quant-bits", type=int, default=None, choices=[4, 8, 16], help="default 8")
    c.add_argument("--vocab-model-file", default=None, help="tokenizer.model, or a folder with tokenizer.json")
    c.add_argument("--lora-ckpt", default=None, help="a PEFT adapter (folder or adapter_model.safetensors) to convert "
                                                   "too (with --lora-rank)")
    c.add_argument("--lora-rank", type=int, default=None, help="the adapter's rank (lora_rank)")
    c.add_argument("--lora-output-file", default=None, help="adapter file to write (default OUTPUT_DIR/lora.tflite)")
    c.add_argument("--quantization-recipe", "--quantize", default=None, metavar="RECIPE",
                   help="--to litertlm: litert-torch's quantization_recipe (default dynamic_wi8_afp32: int8 "
                        "per-channel weights, float activations; none keeps float32; a wrong name lists them)")
    c.add_argument("--prefill-lengths", type=_lengths, default=None, metavar="N,N,...",
                   help="--to litertlm: a prefill_N signature for each (default 128)")
    c.add_argument("--cache-length", "--kv-cache-length", type=int, default=None, metavar="N",
                   help="--to litertlm: the KV cache's positions, fixed in the graph: the most maxTokens it runs "
                        "with (default 4096)")
    c.set_defaults(run=_convert)

    cl = sub.add_parser("convert-lora", help="PEFT LoRA adapter -> GGUF LoRA adapter for a model "
                                             "(what the C API, Kotlin and llama.cpp's --lora load)")
    cl.add_argument("--model", required=True, help="the base model: model file, .task bundle or checkpoint folder")
    cl.add_argument("--adapter", required=True, help="PEFT adapter folder or adapter_model.safetensors")
    cl.add_argument("--output", required=True, help="adapter file to write")
    cl.add_argument("--lora-rank", type=int, default=None, help="refuse an adapter of another rank")
    cl.set_defaults(run=_convert_lora)

    b = sub.add_parser("bundle", help="model file + tokenizer -> .task bundle")
    b.add_argument("--model", required=True)
    b.add_argument("--tokenizer", required=True)
    b.add_argument("--start-token", required=True)
    b.add_argument("--stop-token", action="append", required=True, help="repeat for several")
    b.add_argument("--output", required=True)
    b.add_argument("--system-prompt", default=None, help="fed once at the start of each session")
    b.add_argument("--prompt-prefix", default=None)
    b.add_argument("--prompt-suffix", default=None)
    b.add_argument("--bytes-to-unicode", action="store_true", help="enable_bytes_to_unicode_mapping")
    b.set_defaults(run=_bundle)

    pc = sub.add_parser("port-check", help="cross-build libpocketlm for a phone's CPU, test it under qemu and "
                                            "report on the library (exits non-zero when a check fails)")
    pc.add_argument("--target", default="aarch64", help="the CPU: aarch64 (arm64 Linux/glibc)")
    pc.add_argument("--out", required=True, help="folder for lib/, include/, bin/ and the build")
    pc.add_argument("--jobs", type=int, default=None, help="parallel build and test jobs (default: all cores)")
    pc.add_argument("--model", default=None, help="GGUF or .task of the end-to-end generation and the logits "
                                                  "comparison (default: the built-in one)")
    pc.add_argument("--prompts", default=None, help="prompts of the logits comparison: a JSON list of strings, or "
                                                    "one prompt per line (default: a few built-in ones)")
    pc.set_defaults(run=_port_check)

    cf = sub.add_parser("config", help="flags to build a C program against the installed libpocketlm "
                                       "(as pkg-config / llvm-config print them)")
    for flag, what in (("--cflags", "the include flag for pocketlm.h"),
                       ("--libs", "the link flags, with an rpath so the program runs without LD_LIBRARY_PATH"),
                       ("--includedir", "the folder holding pocketlm.h"), ("--libdir", "the folder holding libpocketlm.so"),
                       ("--classpath", "the JVM classpath of MediaPipe's and LiteRT-LM's Android classes on the host (the "
                                       "stub jars, Guava, Kotlin's runtime and coroutines)"),
                       ("--java-library-path", "the folder holding libpocketlm_jni.so, for -Djava.library.path")):
        cf.add_argument(flag, action="store_true", help=what)
    cf.set_defaults(run=_config)
    return p


def _port_check(a) -> int:
    from .port_check import load_prompts, port_check

    return port_check(a.target, a.out, a.jobs, a.model, prompts=load_prompts(a.prompts) if a.prompts else None)


def _config(a) -> None:
    from .kernels.native import NativeUnavailable

    try:
        from .kernels import native
    except NativeUnavailable as e:
        raise OSError(f"libpocketlm is not built: {e}") from None
    header, lib = native.header_path(), Path(native.LIBRARY).resolve()
    inc, libdir = str(Path(header).resolve().parent), str(lib.parent)
    out = []
    if a.cflags:
        out.append(f"-I{inc}")
    if a.libs:
        out += [f"-L{libdir}", f"-Wl,-rpath,{libdir}", "-lpocketlm"]
    if a.includedir:
        out.append(inc)
    if a.libdir:
        out.append(libdir)
    if a.classpath or a.java_library_path:
        jar, jni = lib.parent / "pocketlm-android.jar", lib.parent / "libpocketlm_jni.so"
        if not jar.is_file() or not jni.is_file():
            raise OSError(f"the JVM bridge is not built in {libdir}: install a JDK and Guava (Debian: "
                          "default-jdk-headless libguava-java), then reinstall pocketlm")
        if a.classpath:
            # LiteRT-LM's Kotlin API and Flow's core (for coroutines that predate it) where they were built
            ours = [str(p) for p in (jar, lib.parent / "pocketlm-litertlm.jar", lib.parent / "pocketlm-kotlinx-flow.jar")
                    if p.is_file()]
            extra = (lib.parent / "java-classpath.txt").read_text().split()
            out.append(":".join([*ours, *extra]))
        if a.java_library_path:
            out.append(libdir)
    if not out:
        raise ValueError("say what to print: --cflags, --libs, --includedir, --libdir, --classpath or "
                         "--java-library-path")
    print(" ".join(out))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.run(args)
    except (ValueError, OSError, IllegalStateError) as e:
        print(f"pocketlm {args.command}: error: {e}", file=sys.stderr)
        return 2
    return rc if isinstance(rc, int) else 0  # a command may report failure by its exit status (port-check)


if __name__ == "__main__":
    sys.exit(main())
