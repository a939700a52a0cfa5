"""pocketlm: run an on-device LLM on a desktop as MediaPipe's LLM Inference
runs it on Android, and tell whether it fits and how fast it is on a phone.

The task API (LlmInference, LlmInferenceOptions, LlmInferenceSession, ...)
is re-exported here from :mod:`pocketlm.tasks`; kernels live in
:mod:`pocketlm.kernels`, model files in :mod:`pocketlm.genai`.
"""

__version__ = "0.1.0"

_TASKS = ("Backend", "GenerationFuture", "GenerationStats", "IllegalStateError", "LlmInference",
          "LlmInferenceOptions", "LlmInferenceSession", "LlmInferenceSessionOptions", "PromptTemplates",
          "PromptTooLongError")
__all__ = ["__version__", *_TASKS]


def __getattr__(name: str):
    # imported on first use, so `import pocketlm.kernels` stays light
    if name in _TASKS:
        from . import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'pocketlm' has no attribute {name!r}")
