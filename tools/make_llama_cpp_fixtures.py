#!/usr/bin/env python3
"""Writes tests/fixtures/llama_cpp/*.gguf with llama.cpp's own converter.

    python tools/make_llama_cpp_fixtures.py /path/to/llama.cpp

The path is a llama.cpp source tree (a git checkout, or vendor/llama.cpp of
the llama-cpp-python sdist). Each tiny checkpoint of
tests/fixtures/llama_cpp.py is converted to F16 by convert_hf_to_gguf.py,
which needs torch, transformers and sentencepiece. llama.cpp's converter
recognises BPE pre-tokenizers by hashing the tokens of a probe text; a tiny
trained tokenizer is in none of its tables, so its plain GPT-2 byte-level
pre-tokenizer is named "gpt-2" (which it is) instead.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.llama_cpp import FIXTURES, SOURCES, fixture_path, source_checkpoint  # noqa: E402

RUN_CONVERTER = """
import runpy, sys
sys.path.insert(0, {src!r})
sys.path.insert(1, {src!r} + "/gguf-py")
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv = ["convert_hf_to_gguf.py", {folder!r}, "--outfile", {out!r}, "--outtype", "f16"]
runpy.run_path({src!r} + "/convert_hf_to_gguf.py", run_name="__main__")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("llama_cpp", type=Path, help="llama.cpp source tree (holds convert_hf_to_gguf.py)")
    ap.add_argument("names", nargs="*", default=list(SOURCES), help=f"fixtures to write (default: {' '.join(SOURCES)})")
    args = ap.parse_args()
    src = args.llama_cpp.resolve()
    if not (src / "convert_hf_to_gguf.py").is_file():
        sys.exit(f"{src}: no convert_hf_to_gguf.py there")
    FIXTURES.mkdir(exist_ok=True)
    for name in args.names:
        with tempfile.TemporaryDirectory() as tmp:
            folder = source_checkpoint(name, Path(tmp) / name)
            out = fixture_path(name)
            code = RUN_CONVERTER.format(src=str(src), folder=str(folder), out=str(out))
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"{name}: llama.cpp's converter failed:\n{r.stderr[-3000:]}")
            print(f"{name}: {out.relative_to(ROOT)} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
