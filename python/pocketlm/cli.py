"""The `pocketlm` command line: `generate`, `chat` and `info` over the task
API, and `convert` / `bundle`, MediaPipe's two model-preparation steps (its
option names in kebab case). Commands that generate print prefill and decode
tokens/s at the end; `info --stats` measures them."""

from __future__ import annotations

import argparse
import sys
import time

from .tasks._generation import IllegalStateError


def _convert(a) -> None:
    from .genai.converter import ConversionConfig, convert_checkpoint

    cfg = ConversionConfig(input_ckpt=a.input_ckpt, ckpt_format=a.ckpt_format, model_type=a.model_type,
                           backend=a.backend, output_dir=a.output_dir, is_quantized=a.quantize,
                           is_symmetric=not a.asymmetric, attention_quant_bits=a.attention_quant_bits,
                           feedforward_quant_bits=a.feedforward_quant_bits,
                           embedding_quant_bits=a.embedding_quant_bits, vocab_model_file=a.vocab_model_file,
                           output_tflite_file=a.output_file)
    path = convert_checkpoint(cfg)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def _bundle(a) -> None:
    from .genai.bundler import BundleConfig, create_bundle

    path = create_bundle(BundleConfig(tflite_model=a.model, tokenizer_model=a.tokenizer, start_token=a.start_token,
                                      stop_tokens=a.stop_token, output_filename=a.output,
                                      enable_bytes_to_unicode_mapping=a.bytes_to_unicode,
                                      prompt_prefix=a.prompt_prefix, prompt_suffix=a.prompt_suffix))
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
    llm = LlmInference.createFromOptions(None, options)
    b = (LlmInferenceSessionOptions.builder().setTopK(a.top_k).setTopP(a.top_p).setTemperature(a.temperature)
         .setRandomSeed(a.seed))
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


def _info(a) -> None:
    from .engine.python_engine import Engine
    from .model.info import describe

    path = _model_path(a)
    engine = Engine(path, max_tokens=a.max_tokens)
    for key, value in describe(engine).items():
        print(f"{key:18} {value}")
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


def _add_generation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model file, .task bundle or checkpoint folder "
                                                 "(default: the built-in SmolLM2-135M-Instruct)")
    p.add_argument("--max-tokens", type=int, default=512, help="input + output tokens (maxTokens)")
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    p.add_argument("--seed", type=int, default=0, help="randomSeed")
    p.add_argument("--raw", action="store_true", help="send text as is, without the model's turn templates")
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

    i = sub.add_parser("info", help="architecture, parameters, weight types, size, context, tokenizer")
    i.add_argument("model", nargs="?", default=None, help="default: the built-in model")
    i.add_argument("--max-tokens", type=int, default=512, help="KV cache length for --stats")
    i.add_argument("--stats", action="store_true", help="also measure prefill and decode tokens/s")
    i.set_defaults(run=_info)

    c = sub.add_parser("convert", help="Hugging Face checkpoint -> pocketlm model file (GGUF)")
    c.add_argument("--input-ckpt", required=True, help="checkpoint folder, file, or glob like 'model*.safetensors'")
    c.add_argument("--ckpt-format", default="safetensors", choices=["safetensors", "pytorch"])
    c.add_argument("--model-type", default=None, help="GEMMA_2B, PHI_2, ... or LLAMA, GPT2, ...; default: config.json")
    c.add_argument("--backend", default="cpu", choices=["cpu", "gpu"])
    c.add_argument("--output-dir", required=True)
    c.add_argument("--output-file", default=None, help="model file to write (default OUTPUT_DIR/model.gguf)")
    c.add_argument("--quantize", action="store_true", help="quantize weights (is_quantized); default keeps F32")
    c.add_argument("--asymmetric", action="store_true", help="4-bit weights as Q4_1 rather than Q4_0")
    for group in ("attention", "feedforward", "embedding"):
        c.add_argument(f"--{group}-quant-bits", type=int, default=8, choices=[4, 8, 16])
    c.add_argument("--vocab-model-file", default=None, help="tokenizer.model, or a folder with tokenizer.json")
    c.set_defaults(run=_convert)

    b = sub.add_parser("bundle", help="model file + tokenizer -> .task bundle")
    b.add_argument("--model", required=True)
    b.add_argument("--tokenizer", required=True)
    b.add_argument("--start-token", required=True)
    b.add_argument("--stop-token", action="append", required=True, help="repeat for several")
    b.add_argument("--output", required=True)
    b.add_argument("--prompt-prefix", default=None)
    b.add_argument("--prompt-suffix", default=None)
    b.add_argument("--bytes-to-unicode", action="store_true", help="enable_bytes_to_unicode_mapping")
    b.set_defaults(run=_bundle)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError, IllegalStateError) as e:
        print(f"pocketlm {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
