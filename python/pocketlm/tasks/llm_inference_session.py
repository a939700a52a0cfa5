"""LlmInferenceSession, its options and PromptTemplates, as MediaPipe's
session API on Android: a conversation with its own KV cache and sampling
settings on a shared LlmInference.

    session = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder()
                                                   .setTopK(10).setTemperature(0.4).build())
    session.addQueryChunk("Hello")
    print(session.generateResponse())
    session.addQueryChunk("And then?")          # only these new tokens are prefilled
    future = session.generateResponseAsync(lambda partial, done: print(partial, end=""))

Turn templates: a session wraps each user turn in its prompt templates
(options.promptTemplates, else the model's own: a bundle's prompt_prefix /
prompt_suffix or what the model's chat template renders). Pass
PromptTemplates() (all empty) to send text exactly as given.

LoRA: a session runs its options' loraPath adapter, else the LlmInference's
loraPath adapter, else the base model (on Android a session without a path
runs the base model even under an LlmInference with one; see llm_inference).
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass

from ..engine.base import GenerationStats, Session
from ..engine.templates import TurnTemplates
from ..sampling import Sampler
from ._generation import (
    GenerationFuture,
    IllegalStateError,
    ProgressListener,
    generate_async,
    generate_sync,
)
from ._options import camel, check_float, check_int, check_path, check_text, with_builder
from .llm_inference import LlmInference

__all__ = ["LlmInferenceSession", "LlmInferenceSessionOptions", "PromptTemplates"]


@with_builder()
@dataclass(frozen=True)
class PromptTemplates:
    """Text put around each turn: user_prefix + query + user_suffix + model_prefix
    before a response, model_suffix after it (when the next turn opens)."""

    user_prefix: str = ""
    user_suffix: str = ""
    model_prefix: str = ""
    model_suffix: str = ""
    system_prefix: str = ""
    system_suffix: str = ""

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if not isinstance(value, str):
                raise ValueError(f"promptTemplates.{camel(name)} must be text, got {value!r}")
            check_text(f"promptTemplates.{camel(name)}", value)

    def _turns(self) -> TurnTemplates:
        """The engine's form of the same six fields (which adds the model-only preamble)."""
        return TurnTemplates(**dataclasses.asdict(self))


@with_builder()
@dataclass(frozen=True)
class LlmInferenceSessionOptions:
    """Sampling and templates of one session, with MediaPipe's defaults."""

    top_k: int = 40  # 1 is greedy; at most the LlmInference's maxTopK
    top_p: float = 1.0
    temperature: float = 0.8  # 0 is greedy
    random_seed: int = 0
    lora_path: str | None = None  # this session's LoRA adapter; None: the LlmInference's loraPath (if any). Fixed
    #                               once created. (Android's None means no adapter; see LlmInference's module doc.)
    prompt_templates: PromptTemplates | None = None

    def __post_init__(self):
        check_int("topK", self.top_k, 1)
        object.__setattr__(self, "top_p", check_float("topP", self.top_p, 0.0, 1.0, open_min=True))
        object.__setattr__(self, "temperature", check_float("temperature", self.temperature, 0.0))
        check_int("randomSeed", self.random_seed)
        object.__setattr__(self, "lora_path", check_path("loraPath", self.lora_path, required=False))
        if self.prompt_templates is not None and not isinstance(self.prompt_templates, PromptTemplates):
            raise ValueError(f"promptTemplates must be PromptTemplates, got {self.prompt_templates!r}")


def _sampler(o: LlmInferenceSessionOptions) -> Sampler:
    return Sampler(o.top_k, o.top_p, o.temperature, o.random_seed)


class LlmInferenceSession:
    """A conversation on an LlmInference; its context carries across calls."""

    def __init__(self, llm: LlmInference, session: Session, options: LlmInferenceSessionOptions):
        self._llm, self._session, self._options = llm, session, options
        self._closed = False
        self._future: GenerationFuture | None = None

    @classmethod
    def createFromOptions(cls, llmInference: LlmInference, options: LlmInferenceSessionOptions
                          ) -> LlmInferenceSession:
        if not isinstance(llmInference, LlmInference):
            raise TypeError(f"llmInference must be an LlmInference, not {type(llmInference).__name__}")
        if not isinstance(options, LlmInferenceSessionOptions):
            raise TypeError(f"options must be LlmInferenceSessionOptions, not {type(options).__name__}")
        engine = llmInference.engine  # raises when the LlmInference is closed
        cls._check_top_k(llmInference, options)
        # no path of its own: the LlmInference's adapter (None without one), never silently the base model
        lora = engine.load_lora(options.lora_path) if options.lora_path else llmInference._lora
        templates = options.prompt_templates._turns() if options.prompt_templates is not None else engine.templates
        return cls(llmInference, engine.new_session(_sampler(options), templates, lora), options)

    @staticmethod
    def _check_top_k(llm: LlmInference, options: LlmInferenceSessionOptions) -> None:
        max_top_k = llm.getOptions().top_k
        if options.top_k > max_top_k:
            raise ValueError(f"topK {options.top_k} is larger than the LlmInference's maxTopK {max_top_k}")

    def _validate(self) -> None:
        if self._closed:
            raise IllegalStateError("LlmInferenceSession is closed")
        if self._llm.engine.busy.locked():  # .engine raises when the LlmInference is closed
            raise IllegalStateError("Previous invocation still processing. Wait for done=true.")

    # -- input and generation ------------------------------------------------------

    def addQueryChunk(self, inputText: str) -> None:
        """Adds text to the user's turn; chunks are processed in order, as one
        concatenated prompt. A chunk that would not fit maxTokens is refused."""
        self._validate()
        check_text("inputText", inputText)
        self._session.add_query_chunk(inputText)

    def generateResponse(self) -> str:
        """The response to the chunks added so far; blocks until done."""
        self._validate()
        try:
            return generate_sync(self._llm.engine, self._session)
        finally:
            self._llm._last_stats = self._session.last_stats

    def generateResponseAsync(self, progressListener: ProgressListener | None = None) -> GenerationFuture:
        """Generates on a worker thread, calling progressListener(partial, done)
        as text is decoded; returns a future of the full text. Errors reach the
        LlmInference's error listener and the future."""
        self._validate()
        session = self._session

        def finished():
            self._llm._last_stats = session.last_stats

        def started(future):  # before the worker runs: a listener may cancel from its very first call
            self._future = future

        return generate_async(self._llm.engine, session, progressListener, self._llm.getOptions().error_listener,
                              finished, started)

    def cancelGenerateResponseAsync(self) -> None:
        """Stops this session's running generateResponseAsync within one decode
        step; the listener still gets done=True and the future the text so far."""
        if self._future is not None:
            self._future.stop.set()

    def sizeInTokens(self, text: str) -> int:
        self._validate()
        check_text("text", text)
        return self._llm.engine.size_in_tokens(text)

    # -- forks and options ---------------------------------------------------------

    def cloneSession(self) -> LlmInferenceSession:
        """A new session continuing from this one's context (its KV cache is
        copied, not recomputed); the two then diverge independently."""
        self._validate()
        return LlmInferenceSession(self._llm, self._session.clone(), self._options.toBuilder().build())

    def updateSessionOptions(self, optionsUpdater: Callable) -> None:
        """optionsUpdater(builder) -> LlmInferenceSessionOptions, as on Android;
        the LoRA path cannot change."""
        self._validate()
        new = optionsUpdater(self._options.toBuilder())
        if not isinstance(new, LlmInferenceSessionOptions):
            raise ValueError("the options updater must return LlmInferenceSessionOptions (call build())")
        if new == self._options:
            return
        if new.lora_path != self._options.lora_path:
            raise ValueError("Lora path cannot be changed after the session is created.")
        self._check_top_k(self._llm, new)
        old, s = self._options, self._session
        sampler = _sampler(new)
        if new.random_seed == old.random_seed:  # same seed: the random stream goes on where it was
            sampler.rng.bit_generator.state = s.sampler.rng.bit_generator.state
        s.sampler = sampler
        if new.prompt_templates != old.prompt_templates:
            s.templates = new.prompt_templates._turns() if new.prompt_templates is not None \
                else self._llm.engine.templates
        self._options = new

    def getSessionOptions(self) -> LlmInferenceSessionOptions:
        return self._options

    @property
    def last_stats(self) -> GenerationStats:
        """Measured figures of this session's last generation (prefill_tokens
        counts only the tokens that were not in the KV cache already)."""
        return self._session.last_stats

    @property
    def n_tokens(self) -> int:
        """Tokens this session's context holds (prefilled or waiting)."""
        return self._session.n_tokens

    def close(self) -> None:
        if self._closed:
            return
        self._validate()
        self._closed = True
        self._session.release()  # frees the KV cache

    def __enter__(self) -> LlmInferenceSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Android nests the options classes in the session class
LlmInferenceSession.LlmInferenceSessionOptions = LlmInferenceSessionOptions
LlmInferenceSession.PromptTemplates = PromptTemplates
