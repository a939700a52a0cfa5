#!/usr/bin/env python3
"""Writes tests/fixtures/mediapipe/gemma-tiny.task with MediaPipe's own bundler.

    python tools/make_mediapipe_fixtures.py [--venv DIR]

MediaPipe 0.10.21 (the reference for pocketlm's genai API) needs numpy<2,
so it cannot be a test dependency: this script makes a virtual environment
with it (DIR, default a temporary folder), writes a tiny pocketlm model file
and its SentencePiece tokenizer with the current interpreter, and calls
``mediapipe.tasks.python.genai.bundler.create_bundle`` in the environment to
bundle them, with a start token, two stop tokens, a system prompt and a
prompt prefix and suffix. tests/genai/test_mediapipe_bundle.py loads the
result and checks it against the same model built from the same seeds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.mediapipe import BUNDLE, SETTINGS, source_model  # noqa: E402

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
    args = ap.parse_args()
    venv = args.venv or Path(tempfile.mkdtemp(prefix="mediapipe-venv-"))
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *DEPS], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", MEDIAPIPE], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer = source_model(Path(tmp))
        config = dict(tflite_model=str(model), tokenizer_model=str(tokenizer), output_filename=str(BUNDLE),
                      **SETTINGS)
        BUNDLE.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(py), "-c", RUN_BUNDLER.format(config=config)], check=True)
    print(f"wrote {BUNDLE} ({BUNDLE.stat().st_size} bytes) with {MEDIAPIPE}'s bundler")


if __name__ == "__main__":
    main()
