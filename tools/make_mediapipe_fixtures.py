#!/usr/bin/env python3
"""Writes the bundles of tests/fixtures/mediapipe/ with MediaPipe's own bundler.

    python tools/make_mediapipe_fixtures.py [--venv DIR] [NAME ...]

MediaPipe 0.10.21 (the reference for pocketlm's genai API) needs numpy<2,
so it cannot be a test dependency: this script makes a virtual environment
with it (DIR, default a temporary folder), writes each tiny pocketlm model file
and its SentencePiece tokenizer with the current interpreter, and calls
``mediapipe.tasks.python.genai.bundler.create_bundle`` in the environment to
bundle them with the settings tests/fixtures/mediapipe.py lists (BUNDLES;
NAME picks some, default all). tests/genai/test_mediapipe_bundle.py loads
the results and checks them against the same models built from the same
seeds; the C API, the JVM bridge and the arm64 build run them too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.mediapipe import BUNDLES, FOLDER  # noqa: E402

MEDIAPIPE = "mediapipe==0.10.21"
# what the bundler's imports need, without MediaPipe's camera, audio and jax dependencies
DEPS = ["numpy<2", "protobuf<5", "sentencepiece", "absl-py", "flatbuffers", "attrs", "opencv-python-headless",
        "matplotlib"]

RUN_BUNDLER = """
import sys
from mediapipe.tasks.python.genai import bundler
bundler.create_bundle(bundler.BundleConfig(**{config!r}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, default=None, help="virtual environment to make or reuse")
    ap.add_argument("names", nargs="*", choices=[[], *BUNDLES], help="bundles to write (default: all)")
    args = ap.parse_args()
    venv = args.venv or Path(tempfile.mkdtemp(prefix="mediapipe-venv-"))
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *DEPS], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", MEDIAPIPE], check=True)
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name in args.names or BUNDLES:
        make, settings = BUNDLES[name]
        out = FOLDER / name
        with tempfile.TemporaryDirectory() as tmp:
            model, tokenizer = make(Path(tmp))
            config = dict(tflite_model=str(model), tokenizer_model=str(tokenizer), output_filename=str(out),
                          **settings)
            subprocess.run([str(py), "-c", RUN_BUNDLER.format(config=config)], check=True)
        print(f"wrote {out} ({out.stat().st_size} bytes) with {MEDIAPIPE}'s bundler")

if __name__ == "__main__":
    main()
