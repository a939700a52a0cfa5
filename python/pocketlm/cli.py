"""The `pocketlm` command line: `convert` and `bundle`, MediaPipe's two
model-preparation steps, with its option names in kebab case."""

from __future__ import annotations

import argparse
import sys


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketlm", description="Run on-device LLMs on a desktop, as on a phone.")
    sub = p.add_subparsers(dest="command", required=True)

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
    except (ValueError, FileNotFoundError) as e:
        print(f"pocketlm {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
