"""LlmInference and LlmInferenceOptions, as com.google.mediapipe.tasks.genai.
llminference.LlmInference on Android, in Python:

    options = (LlmInferenceOptions.builder()
               .setModelPath("/data/local/tmp/llm/model.task")
               .setMaxTokens(512).setTopK(40).setTemperature(0.8).setRandomSeed(0)
               .setResultListener(lambda partial, done: print(partial, end="", flush=True))
               .setErrorListener(lambda e: print("error:", e))
               .build())
    llm = LlmInference.createFromOptions(None, options)
    text = llm.generateResponse("Hello")
    future = llm.generateResponseAsync("Tell me a story")

Each generateResponse call runs in a new implicit session (no memory of
earlier calls), as on Android; use LlmInferenceSession for conversations.
loraPath applies a LoRA adapter to those implicit sessions and to every
LlmInferenceSession whose options name no loraPath of their own; a session
that names one runs that adapter instead, so sessions of one LlmInference may
run different adapters over the shared base weights. The adapter is read and
checked when the task is created. (MediaPipe on Android gives such a session
no adapter at all -- LlmInferenceSession.createFromOptions sends an empty
lora_path -- so a session there drops the task's adapter silently; pocketlm
keeps it. For base-model sessions, create the LlmInference without loraPath.)
This module holds the public surface only; the engine and threading live in
pocketlm.engine and tasks._generation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..engine.base import Engine, GenerationStats, PromptTooLongError, Session
from ..sampling import Sampler
from ._generation import (
    ErrorListener,
    GenerationFuture,
    IllegalStateError,
    ProgressListener,
    generate_async,
    generate_sync,
)
from ._options import check_callable, check_float, check_int, check_path, check_text, with_builder

__all__ = ["Backend", "IllegalStateError", "LlmInference", "LlmInferenceOptions", "PromptTooLongError"]


class Backend(enum.Enum):
    """LlmInference.Backend: the accelerator a phone would use. Recorded; pocketlm runs both on the CPU."""

    DEFAULT = "default"
    CPU = "cpu"
    GPU = "gpu"


@with_builder(aliases={"maxTopK": "top_k"})
@dataclass(frozen=True)
class LlmInferenceOptions:
    """Options of an LlmInference, with MediaPipe's defaults. Immutable; make
    them with LlmInferenceOptions.builder()...build() (or this constructor)."""

    model_path: str = ""  # a .task bundle, a model file (.gguf) or a Hugging Face checkpoint folder
    max_tokens: int = 512  # input + output tokens: the length of the KV cache
    top_k: int = 40  # also maxTopK: the largest topK a session of this engine may use
    temperature: float = 0.8  # 0 is greedy
    random_seed: int = 0
    lora_path: str | None = None  # a LoRA adapter (PEFT folder/file or GGUF adapter) for generateResponse(Async)
    #                               and for every session whose options set no loraPath of their own
    supported_lora_ranks: tuple[int, ...] = ()  # the ranks adapters may have (empty: any)
    result_listener: ProgressListener | None = None  # listener(partialResult, done) for generateResponseAsync
    error_listener: ErrorListener | None = None  # listener(exception) for errors of generateResponseAsync
    preferred_backend: Backend = Backend.DEFAULT

    def __post_init__(self):
        object.__setattr__(self, "model_path", check_path("modelPath", self.model_path, required=True))
        check_int("maxTokens", self.max_tokens, 1)
        check_int("topK", self.top_k, 1)
        object.__setattr__(self, "temperature", check_float("temperature", self.temperature, 0.0))
        check_int("randomSeed", self.random_seed)
        object.__setattr__(self, "lora_path", check_path("loraPath", self.lora_path, required=False))
        ranks = self.supported_lora_ranks
        if ranks is None:
            ranks = ()
        if not isinstance(ranks, (list, tuple)):
            raise ValueError(f"supportedLoraRanks must be a list of integers, got {ranks!r}")
        for r in ranks:
            check_int("supportedLoraRanks", r, 1)
        object.__setattr__(self, "supported_lora_ranks", tuple(ranks))
        check_callable("resultListener", self.result_listener)
        check_callable("errorListener", self.error_listener)
        backend = self.preferred_backend
        if isinstance(backend, str) and backend.lower() in {b.value for b in Backend}:
            object.__setattr__(self, "preferred_backend", Backend(backend.lower()))
        elif not isinstance(backend, Backend):
            raise ValueError(f"preferredBackend must be one of {[b.name for b in Backend]}, got {backend!r}")


class LlmInference:
    """The LLM Inference task: one loaded model, generating on the CPU."""

    Backend = Backend
    LlmInferenceOptions = LlmInferenceOptions

    def __init__(self, engine: Engine, options: LlmInferenceOptions, context=None):
        self._engine, self._options, self._context = engine, options, context
        self._closed = False
        self._last_stats = GenerationStats()
        self._lora = None  # options.loraPath's adapter, for the implicit sessions

    @classmethod
    def createFromOptions(cls, context, options: LlmInferenceOptions, *, tokenizer: str | None = None) -> LlmInference:
        """Loads the model of options.modelPath. context is where Android passes
        its Context: a pocketlm.device.DeviceContext (`pocketlm.device.context("pixel_8")`)
        holds the run to that phone's memory budget and threads; None runs unconstrained.
        A model that does not fit the phone raises DeviceMemoryError before any work.
        tokenizer (keyword only, pocketlm's own): the tokenizer file of a bare
        .tflite model, which carries none (default: the one beside it)."""
        from ..device import DeviceContext

        if not isinstance(options, LlmInferenceOptions):
            raise TypeError(f"options must be LlmInferenceOptions, not {type(options).__name__}")
        if context is not None and not isinstance(context, DeviceContext):
            raise TypeError(f"context must be a pocketlm.device.DeviceContext or None, not {type(context).__name__}")
        if options.preferred_backend is Backend.GPU:
            import warnings

            warnings.warn("preferredBackend GPU is recorded only: pocketlm runs the model on the CPU (the phone's CPU "
                          "path), so speed and memory figures are the CPU backend's", RuntimeWarning, stacklevel=2)
        engine = Engine(options.model_path, options.max_tokens, device=context, tokenizer=tokenizer)
        engine.supported_lora_ranks = options.supported_lora_ranks
        try:
            lora = engine.load_lora(options.lora_path) if options.lora_path else None
        except BaseException:
            engine.close()
            raise
        if context is not None:
            context.apply_thread_cap()
        self = cls(engine, options, context)
        self._lora = lora
        return self

    # -- state ---------------------------------------------------------------------

    def _validate(self) -> None:
        if self._closed:
            raise IllegalStateError("LlmInference is closed")

    @property
    def engine(self) -> Engine:
        self._validate()
        return self._engine

    def _implicit_session(self) -> Session:
        o = self._options
        return self._engine.new_session(Sampler(o.top_k, 1.0, o.temperature, o.random_seed), self._engine.templates,
                                        self._lora)

    # -- generation ----------------------------------------------------------------

    def generateResponse(self, inputText: str) -> str:
        """The response to inputText, generated in a new session; blocks until done."""
        self._validate()
        check_text("inputText", inputText)
        session = self._implicit_session()
        try:
            session.add_query_chunk(inputText)
        except BaseException:
            session.release()
            raise
        try:
            return generate_sync(self._engine, session, release=True)
        finally:
            self._last_stats = session.last_stats

    def generateResponseAsync(self, inputText: str, progressListener: ProgressListener | None = None
                              ) -> GenerationFuture:
        """Generates on a worker thread, streaming partial results to
        progressListener (else the options' result listener); returns a future
        of the full text. Errors reach the error listener and the future."""
        self._validate()
        check_text("inputText", inputText)  # bad text raises here, in the caller's thread
        session = self._implicit_session()
        try:
            session.add_query_chunk(inputText)  # a too-long prompt fails here, before any work
        except BaseException:
            session.release()
            raise
        listener = progressListener or self._options.result_listener

        def finished():
            self._last_stats = session.last_stats
            session.release()

        return generate_async(self._engine, session, listener, self._options.error_listener, finished)

    def sizeInTokens(self, text: str) -> int:
        """Number of tokens text tokenizes to (no BOS, no template)."""
        self._validate()
        check_text("text", text)
        return self._engine.size_in_tokens(text)

    @property
    def last_stats(self) -> GenerationStats:
        """Measured prefill / decode figures of the last finished generation."""
        return self._last_stats

    @property
    def context(self):
        """The DeviceContext given at creation (None without one)."""
        return self._context

    def getOptions(self) -> LlmInferenceOptions:
        return self._options

    def close(self) -> None:
        """Stops a running generation (within one decode step), waits for its
        thread, and releases the model. Later calls raise IllegalStateError."""
        if self._closed:
            return
        running = self._engine.running
        if running is not None and not running.done():
            running.stop.set()
            running.join()
        self._closed = True
        self._engine.close()  # drops the memory-mapped weights
        if self._context is not None:
            self._context.restore_thread_cap()

    def __enter__(self) -> LlmInference:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._engine.model_path.name}, maxTokens={self._options.max_tokens}"
        return f"LlmInference({state})"

