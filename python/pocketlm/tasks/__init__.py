"""pocketlm.tasks: MediaPipe's LLM Inference task API in Python
(com.google.mediapipe.tasks.genai.llminference on Android)."""

from ..engine.base import GenerationStats, PromptTooLongError
from ._generation import GenerationFuture, IllegalStateError
from .llm_inference import Backend, LlmInference, LlmInferenceOptions
from .llm_inference_session import (
           LlmInferenceSession,
           LlmInferenceSessionOptions,
           PromptTemplates,
)

__all__ = ["Backend", "GenerationFuture", "GenerationStats", "IllegalStateError", "LlmInference",
           "LlmInferenceOptions", "LlmInferenceSession", "LlmInferenceSessionOptions", "PromptTemplates",
           "PromptTooLongError"]
