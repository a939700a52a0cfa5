"""What every engine shares: the Engine (one loaded model: tokenizer, stop tokens,
turn templates, the device check, LoRA adapters), the Session interface, the
engine choice, GenerationStats and PromptTooLongError. It runs no forward pass
and holds no KV cache (engine/python.py, engine/native.py do), and knows no task API.

An Engine hands out Sessions, each with its own KV cache, sampler and
conversation state, as MediaPipe's llm_inference_engine does under
LlmInference. A Session takes text chunks, prefills only the tokens its cache
does not hold yet, and decodes token by token, calling back with each new
piece of text. It knows nothing of listeners, futures or threads: that is the
task layer's business (pocketlm.tasks).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelFileError, reading
from ..model.forward import KV_TYPES, TrafficCounters
from ..model.info import kv_bytes_per_token, parameter_count, weight_bytes, weight_types
from ..model.loader import load_model
from ..sampling import Sampler
from .templates import TurnTemplates, from_chat_template

ENGINE_ENV = "POCKETLM_ENGINE"

# end-of-turn markers of common chat formats: when one is a single token of the
# vocabulary it ends generation, as llama.cpp's end-of-generation tokens do
_END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>", "<|end|>", "</s>")


# the KV cache's type unless an engine is asked for another: F16, as llama.cpp keeps it
DEFAULT_KV_TYPE = "F16"


class PromptTooLongError(ValueError):
    """The prompt (with what the session already holds) does not fit maxTokens."""


class NativeEngineUnavailable(RuntimeError):
    """POCKETLM_ENGINE=native was asked for, but libpocketlm cannot be loaded."""


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


# -- which engine ------------------------------------------------------------------


def native_available() -> tuple[bool, str]:
    """(True, path of libpocketlm) or (False, why not)."""
    try:
        from ..kernels import native
    except ImportError as e:
        return False, str(e)
    return True, str(native.LIBRARY)


def engine_kind(requested: str | None = None) -> str:
    """'native' or 'python': what was asked (argument, else POCKETLM_ENGINE), or
    native when libpocketlm loads and python otherwise. Asking for native when
    it cannot load is an error, never a quiet fallback."""
    want = (requested or os.environ.get(ENGINE_ENV) or "").strip().lower()
    if want not in ("", "native", "python"):
        raise ValueError(f"{ENGINE_ENV} is 'native' or 'python', not {want!r}")
    if want == "python":
        return "python"
    ok, why = native_available()
    if want == "native" and not ok:
        raise NativeEngineUnavailable(f"{ENGINE_ENV}=native, but the native engine cannot load: {why}")
    return "native" if ok else "python"


def _c_template_family(template: str, bos: str, eos: str, strip_bos: bool):
    """(family, turn-template fields) as libpocketlm recognises the chat template, or None."""
    if not native_available()[0]:
        return None
    from ..kernels.native import chat_template_family

    return chat_template_family(template, bos, eos, strip_bos)


# -- the engine --------------------------------------------------------------------


class Engine:
    """One loaded model, shared by the sessions made from it."""

    def __init__(self, model_path: str | Path, max_tokens: int, backend=None, device=None, engine: str | None = None,
                 kv_type: str = DEFAULT_KV_TYPE, tokenizer: str | Path | None = None):
        """device: a pocketlm.device.DeviceContext whose memory budget the engine
        and its sessions are counted against (None: no limit). engine: 'native'
        (libpocketlm's C engine) or 'python'; None takes POCKETLM_ENGINE, else
        native when libpocketlm loads (see engine_kind). A kernel backend given
        by name runs the Python engine over it. kv_type: the KV cache's F16
        (llama.cpp's default) or F32. The files LiteRT runs (.litertlm, a
        TFLite .task, .tflite) take the 'litert' engine whatever is asked, with
        the graph's own F32 caches; tokenizer names a bare .tflite's."""
        if kv_type not in KV_TYPES:
            raise ValueError(f"the KV cache is kept as F32 or F16, not {kv_type!r}")
        from ..model.litert_model import LiteRTGraph
        from ..model.tflite_generation import WholeGenerationGraph

        self.model, self.tokenizer, self.metadata = load_model(model_path, backend=backend, tokenizer=tokenizer)
        self.model_path, self.max_tokens, self.device = Path(model_path), max_tokens, device
        if isinstance(self.model, WholeGenerationGraph):  # text in, text out: TensorFlow's interpreter runs it
            from .litert_tf import setup

            setup(self, self.model, max_tokens, backend, engine, device)
            return
        if isinstance(self.model, LiteRTGraph):  # a file LiteRT runs, on LiteRT's own kernels
            if backend is not None or (engine or "").strip().lower() == "python":
                raise ValueError(f"{model_path}: a LiteRT file runs on LiteRT's kernels (the litert engine), not on "
                                 "pocketlm's Python engine or a kernel backend")
            self.kind, kv_type = "litert", self.model.cfg.kv_type
        else:
            self.kind = "python" if backend is not None and engine is None else engine_kind(engine)
        self.kv_type = kv_type
        if self.tokenizer is None:
            raise ModelFileError(f"{model_path}: the model carries no tokenizer (no tokenizer.ggml.model); convert "
                                 "it with vocab_model_file")
        self.model_path = Path(model_path)
        self.max_tokens = max_tokens
        self.device = device
        self.native = None
        self.template_family = None  # the chat template's family, when libpocketlm recognises it
        self.text_path_note = None  # why a native engine keeps the Python tokenizer, when it does
        # each engine's module imports this one; the engine asked for is imported once it is chosen
        self.notes: list[str] = []  # what a user should know about how this file runs
        if self.kind == "litert":
            from .litert import memory_note, open_graph
            from .native import NativeSession, c_text_path

            self.native = open_graph(self.model, max_tokens)
            self._session_class = NativeSession
            ctok, self.text_path_note = c_text_path(self.tokenizer)
            if ctok is not None:
                self.tokenizer = ctok
            note = memory_note(self.model, max_tokens)
            if note:
                self.notes.append(note)
        elif self.kind == "native":
            from .native import NativeModel, NativeSession, c_text_path

            source = getattr(self.model, "source", None)
            self.native = NativeModel.open(*source, cfg=self.model.cfg) if source else \
                NativeModel.from_model(self.model, str(self.model_path))
            self._session_class = NativeSession
            ctok, self.text_path_note = c_text_path(self.tokenizer)
            if ctok is not None:
                self.tokenizer = ctok
        else:
            from .python import PythonSession

            self._session_class = PythonSession
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
        self.stop_ids.update(int(i) for i in self.metadata.get("stop_token_ids") or [])
        # token sequences that end a response: LiteRT-LM tokenizes a stop token that is no single token as
        # plain text and stops on that sequence
        self.stop_sequences: list[list[int]] = [list(map(int, ids)) for ids in
                                                self.metadata.get("stop_sequence_ids") or []]
        for t in self.metadata.get("stop_tokens") or []:
            if self.kind == "litert" and isinstance(t, str) and self.tokenizer.special_id(t) is None:
                ids = self.tokenizer.encode(t)
                if len(ids) == 1:
                    self.stop_ids.add(ids[0])
                elif ids:
                    self.stop_sequences.append(ids)
            else:
                self.stop_ids.add(self._single_token(t, "stop_tokens"))
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
            from .native import NativeLora

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
        """A session of this engine's kind; lora: an adapter of load_lora (None: the base model)."""
        return self._session_class(self, sampler, templates, lora)


# -- the session -------------------------------------------------------------------


@dataclass
class Session:
    """A conversation: the tokens its engine has run and those waiting to be
    prefilled. This class holds the text side every engine shares (query chunks,
    turn templates, the maxTokens check); each engine's subclass runs the tokens."""

    engine: Engine
    sampler: Sampler
    templates: TurnTemplates | None
    lora: object = None  # a LoraAdapter of engine.load_lora, applied to every forward pass of this session
    tokens: list[int] = field(init=False, default_factory=list)  # ids whose keys/values the cache holds
    pending: list[int] = field(init=False, default_factory=list)  # ids added but not yet prefilled
    in_user_turn: bool = field(init=False, default=False)
    formatted: bool = field(init=False, default=False)  # this turn's text came already templated
    turns: int = field(init=False, default=0)  # finished responses
    last_stats: GenerationStats = field(init=False, default_factory=GenerationStats)
    # per-response control of the decode loop (pocketlm.litertlm's Constraint): mask(logits) in place before
    # each sample, accept(token) after each token that is not a stop token, True to end the response there
    decode_hook: object = field(init=False, default=None)

    # -- what each engine's session provides ----------------------------------------

    def __post_init__(self):
        """Opens the session's KV cache (counted against the device budget first)."""
        raise NotImplementedError

    def generate(self, on_text: Callable[[str], None], cancelled: threading.Event | None = None) -> str:
        """Prefills what is pending, then samples until a stop token, maxTokens
        or cancellation; on_text gets each new piece of text as it is decoded.
        Returns the whole response."""
        raise NotImplementedError

    def clone(self) -> Session:
        """A fork holding the same conversation, its KV cache copied (nothing is
        prefilled again) and the sampler's random stream continuing from the
        same state in both."""
        raise NotImplementedError

    def release(self) -> None:
        """Frees the KV cache (and its share of the device budget); idempotent."""
        raise NotImplementedError

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
        template's user prefix (and closes the previous model turn). The opening
        and the text are tokenized as one string, as LiteRT-LM's session
        tokenizes a prompt template's prefix with the input (and as a rendered
        chat template is tokenized whole): a SentencePiece tokenizer would
        otherwise start the text with a word boundary of its own."""
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
                text = opening + text
        new += self._encode(text)
        self._check_fits(new)
        self.pending += new
        self.in_user_turn = True

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


# -- `pocketlm info` ---------------------------------------------------------------


def describe_engine(engine: Engine) -> str:
    """The line `pocketlm info` prints for the engine in use."""
    ok, where = native_available()
    if getattr(engine, "native", None) is not None:
        return f"native (libpocketlm: {where})"
    why = f"{ENGINE_ENV}=python" if ok else f"the native engine cannot load: {where}"
    return f"python ({engine.model.k.name} kernels; {why})"


def describe(engine: Engine) -> dict[str, str]:
    """Lines of `pocketlm info` for an Engine: the model's figures (model/info.py)
    and what the engine made of it (engine, BOS, stop tokens, turn template)."""
    m, c, tok = engine.model, engine.model.cfg, engine.tokenizer
    n = parameter_count(m)
    path = engine.model_path
    size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    types = ", ".join(f"{t} {k / n:.0%}" for t, k in weight_types(m).items())
    stops = ", ".join(repr(tok.decode([i])) for i in sorted(engine.stop_ids)) or "none"
    t = engine.templates
    return {
        "file": f"{path} ({size / 1e6:.1f} MB)",
        "architecture": f"{c.arch}: {c.n_layers} layers, hidden {c.hidden_size}, {c.n_heads} heads "
                        f"({c.n_kv_heads} KV heads, dim {c.head_dim}), MLP {c.intermediate_size}",
        "parameters": f"{n / 1e6:.1f} M",
        "weights": f"{weight_bytes(m) / 1e6:.1f} MB in memory: {types}",
        "context length": f"{c.max_position_embeddings} positions (trained)",
        "KV cache": f"{kv_bytes_per_token(m, engine.kv_type) / 1024:.1f} KiB per token ({engine.kv_type})",
        "engine": describe_engine(engine),
        "tokenizer": f"{type(tok).__name__}, {tok.vocab_size} tokens, BOS "
                     f"{repr(tok.decode([engine.bos_id])) if engine.bos_id is not None and engine.add_bos else 'none'}",
        "stop tokens": stops,
        "turn template": (repr(t.user_prefix + "{prompt}" + t.user_suffix + t.model_prefix) if t else
                          "none (prompts are sent as they are)"),
    }
