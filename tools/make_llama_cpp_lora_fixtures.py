#!/usr/bin/env python3
"""Writes tests/fixtures/llama_cpp/lora/<name>.gguf with llama.cpp's own
LoRA converter (convert_lora_to_gguf.py).

    python tools/make_llama_cpp_lora_fixtures.py /path/to/llama.cpp

For each name, the checkpoint behind tests/fixtures/llama_cpp/<name>.gguf is
rebuilt (tests/fixtures/llama_cpp.py), a PEFT adapter is made for it with
peft (tests/fixtures/lora.py, seed LORA_SEEDS[name]) and llama.cpp converts
the adapter against that checkpoint, to F16 as its default. The tests
rebuild the same adapter with peft and compare. Needs torch, transformers
and peft.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.llama_cpp import source_checkpoint  # noqa: E402
from tests.fixtures.lora import LORA_SEEDS, lora_fixture_path, peft_adapter  # noqa: E402

RUN_CONVERTER = """
import runpy, sys
sys.path.insert(0, {src!r})
sys.path.insert(1, {src!r} + "/gguf-py")
sys.argv = ["convert_lora_to_gguf.py", {adapter!r}, "--base", {folder!r}, "--outfile", {out!r}, "--outtype", "f16"]
runpy.run_path({src!r} + "/convert_lora_to_gguf.py", run_name="__main__")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("llama_cpp", type=Path, help="llama.cpp source tree (holds convert_lora_to_gguf.py)")
    ap.add_argument("names", nargs="*", default=list(LORA_SEEDS), help=f"fixtures (default: {' '.join(LORA_SEEDS)})")
    args = ap.parse_args()
    src = args.llama_cpp.resolve()
    if not (src / "convert_lora_to_gguf.py").is_file():
        sys.exit(f"{src}: no convert_lora_to_gguf.py there")
    for name in args.names:
        with tempfile.TemporaryDirectory() as tmp:
            folder = source_checkpoint(name, Path(tmp) / name)
            adapter = peft_adapter(folder, Path(tmp) / "adapter", seed=LORA_SEEDS[name])
            out = lora_fixture_path(name)
            out.parent.mkdir(exist_ok=True)
            code = RUN_CONVERTER.format(src=str(src), adapter=str(adapter), folder=str(folder), out=str(out))
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"{name}: llama.cpp's LoRA converter failed:\n{r.stderr[-3000:]}")
            print(f"{name}: {out.relative_to(ROOT)} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
