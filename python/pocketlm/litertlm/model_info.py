"""litert_lm.ModelInfo: what a model file says of itself (context length,
type, modalities, capabilities), read without making an engine's sessions."""

from __future__ import annotations

import dataclasses
import os

from .interfaces import LiteRtLmModelType, SamplerConfig


@dataclasses.dataclass
class SupportedModalities:
    text: bool
    vision: bool
    audio: bool
    video: bool


class LlmCapability:
    def __init__(self, meta: dict):
        self._meta = meta

    @property
    def has_speculative_decoding_support(self) -> bool:
        return False

    @property
    def supports_thinking(self) -> bool:
        return bool(self._meta.get("supports_thinking", False))

    @property
    def supports_function_calling(self) -> bool:
        return bool(self._meta.get("supports_function_calling", False))

    @property
    def default_sampler_params(self) -> SamplerConfig:
        sp = self._meta.get("sampler_params") or {}
        return SamplerConfig(top_k=sp.get("top_k"), top_p=sp.get("top_p"), temperature=sp.get("temperature"),
                             seed=sp.get("seed"))

    @property
    def is_dynamic_context(self) -> bool:
        return False


class ModelInfo:
    """A model file's own figures (a .litertlm's LlmMetadata; a GGUF's or checkpoint's config)."""

    def __init__(self, model_path: str | os.PathLike[str]):
        from ..model.litert_model import LiteRTGraph
        from ..model.loader import load_model

        model, _, self._meta = load_model(model_path)
        self._graph = isinstance(model, LiteRTGraph)
        self._context = int(self._meta.get("max_num_tokens") or
                            (model.cache_length if self._graph else model.cfg.max_position_embeddings))
        self._closed = False

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("ModelInfo is closed.")

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> ModelInfo:
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self.close()

    @property
    def llm(self) -> LlmCapability | None:
        self._check_closed()
        return LlmCapability(self._meta)

    @property
    def embedding(self):
        self._check_closed()
        return None

    @property
    def input_modalities(self) -> SupportedModalities:
        self._check_closed()
        return SupportedModalities(text=True, vision=False, audio=False, video=False)

    @property
    def max_context_tokens(self) -> int:
        self._check_closed()
        return self._context

    @property
    def model_type(self) -> LiteRtLmModelType:
        self._check_closed()
        return LiteRtLmModelType.LLM

    @property
    def is_embedding_model(self) -> bool:
        return self.model_type == LiteRtLmModelType.EMBEDDING

    @property
    def is_llm_model(self) -> bool:
        return self.model_type == LiteRtLmModelType.LLM

    @property
    def is_dynamic_context(self) -> bool:
        self._check_closed()
        return False

    @property
    def min_runtime_version(self) -> str | None:
        self._check_closed()
        return self._meta.get("min_runtime_version")
