"""litert_lm's embedding engine, named so that programs importing it load,
and refused when made: pocketlm runs generative models only."""

from __future__ import annotations

import enum
from typing import Any

from .interfaces import Backend


class InputOverflowStrategy(enum.Enum):
    """litert_lm.embedding_engine.InputOverflowStrategy."""

    CHUNK_AND_AVERAGE = 0
    TRUNCATE = 1
    ERROR = 2


class EmbeddingEngine:
    """litert_lm.EmbeddingEngine: refused by name (pocketlm runs generative models, not embedding models)."""

    def __init__(self, model_path: str, backend: Backend | None = None, vision_backend: Backend | None = None,
                 audio_backend: Backend | None = None, cache_dir: str | None = None, min_input_length: int | None = None,
                 max_input_length: int | None = None, vision_tokens_per_image: int | None = None, **kwargs: Any):
        raise NotImplementedError(f"EmbeddingEngine({model_path!r}): pocketlm runs generative models only; "
                                  "embedding models are not supported")
