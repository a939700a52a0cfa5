"""The token-level engine under the task API, as MediaPipe's
llm_inference_engine is under LlmInference: an Engine holds one loaded model
(weights memory-mapped, tokenizer, stop tokens, turn templates) and hands
out Sessions, each with its own KV cache, sampler and conversation state.

A Session takes text chunks, prefills only the tokens its cache does not
hold yet, and decodes token by token, calling back with each new piece of
text. It knows nothing of listeners, futures or threads: that is the task
layer's business (pocketlm.tasks).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, reading
from ..model.forward import KV_TYPES, KVCache, TrafficCounters
from ..model.info import kv_bytes_per_token
from ..model.loader import load_model
from ..sampling import Sampler
from ..tokenizer import StreamDecoder
from .templates import TurnTemplates, from_chat_template

# end-of-turn markers of common chat formats: when one is a single token of the
# vocabulary it ends generation, as llama.cpp's end-of-generation tokens do
_END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>", "<|end|>", "</s>")


# the KV cache's type unless an engine is asked for another: F16, as llama.cpp keeps it
DEFAULT_KV_TYPE = "F16"

# the prefill runs in batches of at most this many tokens (llama.cpp's default n_batch): it bounds the
# activation memory, whatever the prompt length
PREFILL_CHUNK = 512


class PromptTooLongError(ValueError):
    """The prompt (with what the session already holds) does not fit maxTokens."""


@dataclass
class GenerationStats:
    """What one generateResponse call did, measured."""

    prefill_tokens: int = 0  # tokens run through the model in the prefill (new tokens only)
    prefill_s: float = 0.0
    decode_tokens: int = 0  # tokens sampled (each but the last also run through the model)
    decode_s: float = 0.0
    time_to_first_token_s: float = 0.0  # from the call to the first sampled token
    stop_reason: str = ""  # "stop_token", "max_tokens" or "cancelled"
    prefill_traffic: TrafficCounters = field(default_factory=TrafficCounters)  # what the prefill read / computed
    decode_traffic: TrafficCounters = field(default_factory=TrafficCounters)  # same, for the decode steps

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prefill_tokens / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        return self.decode_tokens / self.decode_s if self.decode_s > 0 else 0.0

    def summary(self) -> str:
        return (f"prefill {self.prefill_tokens} tokens at {self.prefill_tokens_per_s:.1f} tok/s, "
                f"decode {self.decode_tokens} tokens at {self.decode_tokens_per_s:.1f} tok/s, "
                f"time to first token {self.time_to_first_token_s * 1e3:.0f} ms")


def _c_template_family(template: str, bos: str, eos: str, strip_bos: bool):
    """(family, turn-template fields) as libpocketlm recognises the chat template, or None."""
    from .native_engine import native_available

    if not native_available()[0]:
        return None
    from ..kernels.native import chat_template_family

    return chat_template_family(template, bos, eos, strip_bos)


class Engine:
    """One loaded model, shared by the sessions made from it."""

    def __init__(self, model_path: str | Path, max_tokens: int, backend=None, device=None, engine: str | None = None,
                 kv_type: str = DEFAULT_KV_TYPE):
        """device: a pocketlm.device.DeviceContext whose memory budget the engine
        and its sessions are counted against (None: no limit). engine: 'native'
        (libpocketlm's C engine) or 'python'; None takes POCKETLM_ENGINE, else
        native when libpocketlm loads (see native_engine.engine_kind). A kernel
        backend given by name runs the Python engine over it. kv_type: the
        KV cache's F16 (llama.cpp's default) or F32."""
        from .native_engine import NativeModel, c_text_path, engine_kind, make_session_class

        if kv_type not in KV_TYPES:
            raise ValueError(f"the KV cache is kept as F32 or F16, not {kv_type!r}")
        self.kind = "python" if backend is not None and engine is None else engine_kind(engine)
        self.kv_type = kv_type
        self.model, self.tokenizer, self.metadata = load_model(model_path, backend=backend)
        if self.tokenizer is None:
            raise ModelFileError(f"{model_path}: the model carries no tokenizer (no tokenizer.ggml.model); convert "
                                 "it with vocab_model_file")
        self.model_path = Path(model_path)
        self.max_tokens = max_tokens
        self.device = device
        self.native = None
        self._session_class = Session
        self.template_family = None  # the chat template's family, when libpocketlm recognises it
        self.text_path_note = None  # why a native engine keeps the Python tokenizer, when it does
        if self.kind == "native":
            source = getattr(self.model, "source", None)
            self.native = NativeModel.open(*source, cfg=self.model.cfg) if source else \
                NativeModel.from_model(self.model, str(self.model_path))
            self._session_class = _native_session_class(make_session_class)
            ctok, self.text_path_note = c_text_path(self.tokenizer)
            if ctok is not None:
                self.tokenizer = ctok
        if device is not None:
            # refused before any KV cache or activation exists, with what would fit
            need = device.check_fits(self.model, max_tokens, str(self.model_path.name), kv_type, self.native)
            device.memory.reserve("weights", need.weights)
            device.memory.reserve("runtime", need.runtime)
            self._held = need
        self.supported_lora_ranks: tuple[int, ...] = ()  # LlmInferenceOptions.supportedLoraRanks (empty: any)
        self._adapters: dict[str, object] = {}  # LoRA adapters by path, shared by the sessions that use them
        # one generation at a time per engine, as on Android
        self.busy = threading.Lock()
        self.running = None  # the future of the async generation in flight, if any (the task layer's)
        self.bos_id, self.add_bos = self.tokenizer.bos_id, self.tokenizer.add_bos
        start = self.metadata.get("start_token")
        if start:  # a bundle's start_token is the BOS it prepends
            self.bos_id, self.add_bos = self._single_token(start, "start_token"), True
        elif "start_token_id" in self.metadata:
            self.bos_id, self.add_bos = int(self.metadata["start_token_id"]), True
        with reading(model_path, "chat template / prompt template"):
            self.templates = self._default_templates()
        self.stop_ids = set(self.tokenizer.eos_ids)
        self.stop_ids.update(self._single_token(t, "stop_tokens") for t in self.metadata.get("stop_tokens") or [])
        for marker in _END_OF_TURN + ((self.templates.model_suffix.strip(),) if self.templates else ()):
            i = self.tokenizer.special_id(marker)
            if i is not None:
                self.stop_ids.add(i)

    def _single_token(self, text: str, what: str) -> int:
        if not isinstance(text, str):
            raise ModelFileError(f"{self.model_path}: {what} {text!r} is not a string")
        with reading(self.model_path, what):
            i = self.tokenizer.special_id(text)
            ids = [i] if i is not None else self.tokenizer.encode(text)
        if len(ids) != 1:
            raise ModelFileError(f"{self.model_path}: {what} {text!r} is not a single token of the model's tokenizer")
        return ids[0]

    def _default_templates(self) -> TurnTemplates | None:
        """The model's own turn templates: a bundle's prompt_prefix / prompt_suffix
        and system_prompt (MediaPipe's bundler fields: the system prompt is fed
        once, at the start of each session), else what its chat template renders."""
        prefix, suffix = self.metadata.get("prompt_prefix"), self.metadata.get("prompt_suffix")
        system = self.metadata.get("system_prompt")
        if prefix or suffix or system:
            return TurnTemplates(user_prefix=prefix or "", model_prefix=suffix or "", preamble=system or "")
        template = self.tokenizer.chat_template or self.metadata.get("chat_template")
        if not template:
            return None
        tok = self.tokenizer
        bos = tok.decode([self.bos_id]) if self.bos_id is not None else ""
        eos = tok.decode([tok.eos_ids[0]]) if tok.eos_ids else ""
        rendered = from_chat_template(template, bos, eos, strip_bos=self.add_bos)
        family = _c_template_family(template, bos, eos, self.add_bos)
        if family is not None:
            self.template_family = family[0]
        if rendered is not None:  # what the template itself writes, default system message included
            return rendered
        # a template Jinja cannot cut into turns (Phi-3.5's writes EOS when no reply is asked for), or
        # no jinja2: the family's turns as libpocketlm recognises them, as MediaPipe's C API uses them
        return TurnTemplates(**family[1]) if family is not None else None

    def scratch(self, n_tokens: int):
        """Counts a forward pass's activations over n_tokens against the device budget."""
        if self.device is None:
            return contextlib.nullcontext()
        from ..device import activation_bytes_per_token

        nbytes = n_tokens * activation_bytes_per_token(self.model.cfg) + 4 * self.model.cfg.vocab_size
        return self.device.memory.hold("activations", nbytes)

    def load_lora(self, path: str | Path):
        """The LoRA adapter at path (model/lora.py reads a PEFT folder or file,
        or a GGUF adapter), checked against this engine's model and
        supportedLoraRanks, and read once: sessions that name the same path
        share it, as they share the base weights. Its memory is counted
        against the device budget, like the weights."""
        from ..model.lora import load_adapter

        key = str(Path(path).resolve())
        adapter = self._adapters.get(key)
        if adapter is not None:
            return adapter
        adapter = load_adapter(path, self.model.cfg)
        adapter.check_ranks(self.supported_lora_ranks)
        if self.native is not None:
            from .native_engine import NativeLora

            adapter.native = NativeLora.create(self.native, adapter)
        adapter.held = adapter.native.nbytes if self.native is not None else adapter.nbytes
        if self.device is not None:
            self.device.memory.reserve("LoRA adapter", adapter.held)
        self._adapters[key] = adapter
        return adapter

    def close(self) -> None:
        """Drops the weights and returns what they held to the device budget."""
        if self.device is not None and self.model is not None:
            self.device.memory.release("weights", self._held.weights)
            self.device.memory.release("runtime", self._held.runtime)
            for adapter in self._adapters.values():
                self.device.memory.release("LoRA adapter", adapter.held)
        self._adapters = {}
        self.model = None
        self.native = None  # sessions still open keep the C model alive until they are released

    def size_in_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def new_session(self, sampler: Sampler, templates: TurnTemplates | None, lora=None) -> Session:
        """A session; lora: an adapter of load_lora (None: the base model)."""
        return self._session_class(self, sampler, templates, lora)


@dataclass
class Session:
    """A conversation: the tokens in its KV cache and those waiting to be prefilled."""

    engine: Engine
    sampler: Sampler
    templates: TurnTemplates | None
    lora: object = None  # a LoraAdapter of engine.load_lora, applied to every forward pass of this session
    cache: KVCache = field(init=False)
    tokens: list[int] = field(init=False, default_factory=list)  # ids whose keys/values the cache holds
    pending: list[int] = field(init=False, default_factory=list)  # ids added but not yet prefilled
    in_user_turn: bool = field(init=False, default=False)
    formatted: bool = field(init=False, default=False)  # this turn's text came already templated
    turns: int = field(init=False, default=0)  # finished responses
    last_stats: GenerationStats = field(init=False, default_factory=GenerationStats)

    def __post_init__(self):
        cfg, n = self.engine.model.cfg, self.engine.max_tokens
        self._kv_bytes = n * kv_bytes_per_token(self.engine.model, self.engine.kv_type)
        if self.engine.device is not None:
            # every session holds a KV cache of its own: counted before it is allocated
            self.engine.device.memory.reserve("KV cache", self._kv_bytes)
            self._finalizer = weakref.finalize(self, self.engine.device.memory.release, "KV cache", self._kv_bytes)
        self.cache = KVCache(cfg, n, self.engine.kv_type)

    def release(self) -> None:
        """Frees the KV cache (and its share of the device budget); idempotent."""
        self.cache = None
        if self.engine.device is not None:
            self._finalizer()

    # -- input ---------------------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        """Tokens of the conversation so far, prefilled or waiting."""
        return len(self.tokens) + len(self.pending)

    def _encode(self, text: str) -> list[int]:
        return self.engine.tokenizer.encode(text) if text else []

    def _check_fits(self, extra: list[int]) -> None:
        n, limit = self.n_tokens + len(extra), self.engine.max_tokens
        if n >= limit:
            raise PromptTooLongError(
                f"the input is {n} tokens (with what this session already holds), but maxTokens is {limit} and "
                f"must leave room for at least one response token; shorten the prompt or raise maxTokens")

    def add_query_chunk(self, text: str) -> None:
        """Tokenizes text as part of the user's turn; a new turn opens with the
        template's user prefix (and closes the previous model turn)."""
        if not isinstance(text, str):
            raise TypeError(f"a query chunk is text, not {type(text).__name__}")
        t, new = self.templates, []
        if not self.in_user_turn:
            if not self.tokens and not self.pending and self.engine.add_bos and self.engine.bos_id is not None:
                new.append(self.engine.bos_id)
            if t is not None:
                opening = (t.model_suffix if self.turns else t.preamble) + t.user_prefix
                if self.turns == 0 and t.user_prefix.strip() and t.user_prefix.strip() in text:
                    # a prompt already written in the chat format is taken as it is, closing included
                    opening, self.formatted = "", True
                new += self._encode(opening)
        new += self._encode(text)
        self._check_fits(new)
        self.pending += new
        self.in_user_turn = True

    # -- generation ----------------------------------------------------------------

    def _forward(self, ids: list[int]) -> np.ndarray:
        logits = self.engine.model.forward(ids, self.cache, last_only=True, lora=self.lora)
        self.tokens += ids
        return logits[-1]

    def _close_turn(self) -> list[int]:
        """Ends the user's turn (the template's user suffix and model prefix) and
        takes the tokens to prefill: all that is pending."""
        if not self.in_user_turn:
            raise ValueError("add a query chunk before generating a response")
        t = self.templates
        closing = self._encode(t.user_suffix + t.model_prefix) if t is not None and not self.formatted else []
        self._check_fits(closing)
        self.pending += closing
        self.in_user_turn = self.formatted = False
        todo, self.pending = self.pending, []
        return todo

    def generate(self, on_text: Callable[[str], None], cancelled: threading.Event | None = None) -> str:
        """Prefills what is pending, then samples until a stop token, maxTokens
        or cancellation; on_text gets each new piece of text as it is decoded.
        Returns the whole response."""
        todo = self._close_turn()
        stats = self.last_stats = GenerationStats()
        t0 = time.perf_counter()
        # prefill: only the tokens the cache does not hold yet
        stats.prefill_tokens = len(todo)
        counters = self.engine.model.counters
        c0 = counters.snapshot()
        for i in range(0, len(todo), PREFILL_CHUNK):
            chunk = todo[i:i + PREFILL_CHUNK]
            with self.engine.scratch(len(chunk)):
                logits = self._forward(chunk)
        t1 = time.perf_counter()
        stats.prefill_s = t1 - t0
        c1 = counters.snapshot()
        stats.prefill_traffic = c1.since(c0)
        stream, pieces = StreamDecoder(self.engine.tokenizer), []
        limit = self.engine.max_tokens
        while True:
            if cancelled is not None and cancelled.is_set():
                stats.stop_reason = "cancelled"
                break
            token = self.sampler.sample(logits)
            if stats.decode_tokens == 0:
                stats.time_to_first_token_s = time.perf_counter() - t0
            if token in self.engine.stop_ids:
                stats.stop_reason = "stop_token"
                break
            stats.decode_tokens += 1
            piece = stream.push(token)
            if piece:
                pieces.append(piece)
                on_text(piece)
            if len(self.tokens) + 1 >= limit:
                # input + output tokens reached maxTokens: the response ends here, as on Android
                self.pending.append(token)
                stats.stop_reason = "max_tokens"
                break
            logits = self._forward([token])
        rest = stream.flush()
        if rest:
            pieces.append(rest)
            on_text(rest)
        stats.decode_s = time.perf_counter() - t1
        stats.decode_traffic = counters.since(c1)
        if self.engine.device is not None:
            self.engine.device.last_stats = stats
        self.turns += 1
        return "".join(pieces)

    def clone(self) -> Session:
        """A fork holding the same conversation: the filled part of the KV cache
        is copied (nothing is prefilled again) and the sampler's random stream
        continues from the same state in both."""
        other = type(self)(self.engine, Sampler(self.sampler.top_k, self.sampler.top_p, self.sampler.temperature,
                                             self.sampler.seed), self.templates, self.lora)
        other.sampler.rng.bit_generator.state = self.sampler.rng.bit_generator.state
        n = len(self.tokens)
        other.cache.k[:, :n] = self.cache.k[:, :n]
        other.cache.v[:, :n] = self.cache.v[:, :n]
        other.cache.n_past = self.cache.n_past
        other.tokens, other.pending = list(self.tokens), list(self.pending)
        other.in_user_turn, other.turns, other.formatted = self.in_user_turn, self.turns, self.formatted
        return other


_NATIVE_SESSION = None


def _native_session_class(make):
    global _NATIVE_SESSION
    if _NATIVE_SESSION is None:
        _NATIVE_SESSION = make(Session)
    return _NATIVE_SESSION
