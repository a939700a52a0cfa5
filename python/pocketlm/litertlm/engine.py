"""litert_lm's Engine, Conversation, Session and Benchmark over pocketlm's
engines (engine/base.py: native, python, or litert for the files LiteRT
runs), under a device context when one is given, as the MediaPipe API runs
them. Texts come from the engine's sessions (their generate loops, sampler
and stop tokens); this module turns LiteRT-LM's calls into turns: the chat
template's render (_chat.py), tools, and a response's constraint
(_constraint.py). Errors carry litert_lm's messages, with the cause added.
"""

from __future__ import annotations

import collections.abc
import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.base import Engine as _Engine
from ..engine.templates import TurnTemplates
from ..sampling import Sampler
from . import _chat
from ._constraint import LARK, Constraint
from ._messages import Message, normalize_message
from .interfaces import (
    CPU,
    ActivationDataType,
    Backend,
    BenchmarkInfo,
    ConstrainedDecodingConfig,
    LiteRtLmConstraintProviderType,
    LoraConfig,
    LoraRankConfig,
    NoRepeatNgramConfig,
    RepetitionPenaltyConfig,
    ResponseFormat,
    Responses,
    SamplerConfig,
    SuppressTokensConfig,
    ThinkingConfig,
    Tool,
    ToolEventHandler,
)
from .tools import tool_from_function

log = logging.getLogger("pocketlm")

# the largest KV cache a file that names none gets (LiteRT-LM's default context for a converted model)
DEFAULT_MAX_NUM_TOKENS = 4096
# rounds of tool calls one send_message runs before it gives the model's message back as it is
MAX_TOOL_ROUNDS = 25


def _refuse(what: str, value, why: str):
    raise ValueError(f"{what}={value!r} is not supported: {why}")


def _sampler(config: SamplerConfig | None, metadata: dict) -> Sampler:
    """A SamplerConfig's sampler (unset fields: top_k 1, top_p 0.95, temperature 1, seed 0), else the file's
    sampler_params, else greedy (LiteRT-LM's CPU default)."""
    if config is None:
        sp = metadata.get("sampler_params")
        if not sp:
            return Sampler(1, 1.0, 1.0, 0)
        if sp.get("type") not in ("TOP_K", "TOP_P", "GREEDY"):
            _refuse("sampler_params.type", sp.get("type"), "pocketlm samples with top-k / top-p only")
        if sp.get("type") == "GREEDY":
            return Sampler(1, 1.0, 1.0, 0)
        return Sampler(max(1, int(sp.get("top_k") or 1)), float(sp.get("top_p") or 1.0),
                       float(sp.get("temperature") or 1.0), int(sp.get("seed") or 0))
    top_k = config.top_k if config.top_k is not None else 1
    top_p = config.top_p if config.top_p is not None else 0.95
    temperature = config.temperature if config.temperature is not None else 1.0
    if top_p == 0:  # the smallest prefix whose mass reaches 0: the top token
        top_k, top_p = 1, 1.0
    return Sampler(top_k, top_p, temperature, config.seed if config.seed is not None else 0)


def _check_penalties(repetition_penalty_config, no_repeat_ngram_config, suppress_tokens_config, thinking_config):
    """What would change the logits but is not implemented is refused by name."""
    r = repetition_penalty_config
    if r is not None and any(v not in (None, 0, 0.0, 1.0) for v in
                             (r.repetition_penalty, r.presence_penalty, r.frequency_penalty)):
        _refuse("repetition_penalty_config", r, "pocketlm's samplers apply no repetition penalties")
    n = no_repeat_ngram_config
    if n is not None and n.no_repeat_ngram_size:
        _refuse("no_repeat_ngram_config", n, "pocketlm's samplers ban no n-grams")
    s = suppress_tokens_config
    if s is not None and s.suppress_tokens:
        _refuse("suppress_tokens_config", s, "pocketlm's samplers suppress no tokens")
    if thinking_config is not None and thinking_config.thinking_token_budget not in (-1, None):
        _refuse("thinking_config.thinking_token_budget", thinking_config.thinking_token_budget,
                "pocketlm has no thinking budget (enable_thinking goes to the chat template)")


class _Timing:
    def __init__(self):
        self.init_s = 0.0
        self.stats = None


def _benchmark_info(timing: _Timing) -> BenchmarkInfo:
    st = timing.stats
    if st is None:
        return BenchmarkInfo(timing.init_s, 0.0, 0, 0.0, 0, 0.0)
    return BenchmarkInfo(init_time_in_second=timing.init_s, time_to_first_token_in_second=st.time_to_first_token_s,
                         last_prefill_token_count=st.prefill_tokens,
                         last_prefill_tokens_per_second=st.prefill_tokens_per_s,
                         last_decode_token_count=st.decode_tokens,
                         last_decode_tokens_per_second=st.decode_tokens_per_s)


class Engine:
    """litert_lm.Engine: one model, loaded once; conversations and sessions
    made from it each hold their own KV cache.

    pocketlm's own keywords: device (a pocketlm.device.DeviceContext or a
    profile name, as MediaPipe's Context: its memory budget and threads hold
    the run), engine ("native" or "python"; the files LiteRT runs take
    "litert"), tokenizer (a bare .tflite's)."""

    def __init__(self, model_path: str, backend: Backend | type[Backend] = CPU(), max_num_tokens: int | None = None,
                 max_num_images: int | None = None, cache_dir: str | None = None,
                 vision_backend: Backend | None = None, audio_backend: Backend | None = None,
                 lora_rank_config: LoraRankConfig | None = None,
                 activation_data_type: ActivationDataType | None = None, enable_benchmark: bool = False,
                 use_ringbuffers_local_attention: bool | None = None, enable_ynnpack: bool | None = None,
                 *, device=None, engine: str | None = None, tokenizer: str | None = None, **kwargs):
        t0 = time.perf_counter()
        if isinstance(backend, type) and issubclass(backend, Backend):
            backend = backend()
        self.model_path, self.backend, self.max_num_images, self.cache_dir = str(model_path), backend, \
            max_num_images, cache_dir
        self.vision_backend, self.audio_backend, self.lora_rank_config = vision_backend, audio_backend, \
            lora_rank_config
        self.activation_data_type, self.enable_benchmark = activation_data_type, enable_benchmark
        self.use_ringbuffers_local_attention, self.enable_ynnpack = use_ringbuffers_local_attention, enable_ynnpack
        self.enable_speculative_decoding = kwargs.pop("enable_speculative_decoding", None)
        if kwargs:
            raise TypeError(f"Engine() got unexpected keyword arguments {sorted(kwargs)}")
        if not isinstance(backend, CPU):
            raise RuntimeError(f"Failed to create LiteRT-LM engine for {model_path}: the {backend.get_name()} "
                               "backend is not simulated; pocketlm runs the model on the CPU (Backend.CPU())")
        for name, value in (("vision_backend", vision_backend), ("audio_backend", audio_backend)):
            if value is not None:
                _refuse(name, value, "pocketlm runs text models only")
        if max_num_images:
            _refuse("max_num_images", max_num_images, "pocketlm runs text models only")
        if activation_data_type not in (None, ActivationDataType.FLOAT32):
            _refuse("activation_data_type", activation_data_type, "pocketlm's engines compute in float32")
        if self.enable_speculative_decoding:
            _refuse("enable_speculative_decoding", True, "pocketlm has no speculative decoding drafter")
        if backend.thread_count is not None and (not isinstance(backend.thread_count, int) or
                                                 backend.thread_count < 1):
            raise ValueError(f"Backend.CPU(thread_count={backend.thread_count!r}): a thread count is >= 1")
        from ..device import DeviceContext, context

        self.device = context(device) if isinstance(device, (str, Path)) else device
        if self.device is not None and not isinstance(self.device, DeviceContext):
            raise TypeError(f"device must be a pocketlm.device.DeviceContext, a profile name or None, "
                            f"not {type(device).__name__}")
        if self.device is not None and backend.thread_count is not None and \
                backend.thread_count > self.device.profile.threads:
            raise ValueError(f"Backend.CPU(thread_count={backend.thread_count}) is more threads than "
                             f"{self.device.profile.name} gives an app ({self.device.profile.threads})")
        n = max_num_tokens if max_num_tokens is not None else self._default_max_tokens(model_path, tokenizer)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"max_num_tokens must be a positive integer, got {max_num_tokens!r}")
        self.max_num_tokens = max_num_tokens
        self._engine = _Engine(model_path, n, device=self.device, engine=engine, tokenizer=tokenizer)
        if lora_rank_config is not None and lora_rank_config.lora_rank:
            self._engine.supported_lora_ranks = (int(lora_rank_config.lora_rank),)
        if self.device is not None:
            self.device.apply_thread_cap()
        self._closed = False
        self._init_s = time.perf_counter() - t0

    @staticmethod
    def _default_max_tokens(model_path, tokenizer) -> int:
        """The file's own: a LiteRT graph's KV cache, LlmMetadata's max_num_tokens, else the model's trained
        context up to DEFAULT_MAX_NUM_TOKENS."""
        from ..model.litert_model import LiteRTGraph
        from ..model.loader import load_model

        model, _, meta = load_model(model_path, tokenizer=tokenizer)
        if isinstance(model, LiteRTGraph):
            return int(meta.get("max_num_tokens") or model.cache_length)
        if meta.get("max_num_tokens"):
            return int(meta["max_num_tokens"])
        return min(int(model.cfg.max_position_embeddings or DEFAULT_MAX_NUM_TOKENS), DEFAULT_MAX_NUM_TOKENS)

    # -- state ---------------------------------------------------------------------------------------------

    def _live(self) -> _Engine:
        if self._closed:
            raise RuntimeError("Engine is closed.")
        return self._engine

    @property
    def pocketlm_engine(self) -> _Engine:
        """pocketlm's own: the engine underneath (kind, device, model)."""
        return self._live()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._engine.close()
        if self.device is not None:
            self.device.restore_thread_cap()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self.close()

    # -- the tokenizer -------------------------------------------------------------------------------------

    @property
    def bos_token_id(self) -> int | None:
        e = self._live()
        return e.bos_id if e.add_bos else None

    @property
    def eos_token_ids(self) -> list[list[int]]:
        e = self._live()
        return [[i] for i in sorted(e.stop_ids)] + [list(q) for q in e.stop_sequences]

    def tokenize(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        return list(self._live().tokenizer.encode(text))

    def detokenize(self, token_ids: list[int]) -> str:
        return self._live().tokenizer.decode([int(i) for i in token_ids])

    # -- conversations and sessions ------------------------------------------------------------------------

    def _lora(self, lora_config: LoraConfig | None):
        if lora_config is None:
            return None
        if lora_config.audio_lora_path:
            _refuse("lora_config.audio_lora_path", lora_config.audio_lora_path, "pocketlm runs text models only")
        if not lora_config.lora_path:
            return None
        try:
            return self._live().load_lora(lora_config.lora_path)
        except (ValueError, OSError) as e:
            raise RuntimeError(f"Failed to set LoRA path: {lora_config.lora_path}: {e}") from e

    def create_conversation(self, *, messages=None, tools=None, tool_event_handler: ToolEventHandler | None = None,
                            automatic_tool_calling: bool = True, extra_context=None,
                            filter_channel_content_from_kv_cache: bool | None = None,
                            thinking_config: ThinkingConfig | None = None,
                            sampler_config: SamplerConfig | None = None, system_message: str | None = None,
                            constrained_decoding_config: ConstrainedDecodingConfig | None = None,
                            lora_config: LoraConfig | None = None, max_output_tokens: int | None = None,
                            chat_template: str | None = None,
                            enable_speculative_decoding: bool | None = None) -> Conversation:
        if enable_speculative_decoding:
            _refuse("enable_speculative_decoding", True, "pocketlm has no speculative decoding drafter")
        return Conversation(self, messages=messages, tools=tools, tool_event_handler=tool_event_handler,
                            automatic_tool_calling=automatic_tool_calling, extra_context=extra_context,
                            thinking_config=thinking_config, sampler_config=sampler_config,
                            system_message=system_message, constrained_decoding_config=constrained_decoding_config,
                            lora_config=lora_config, max_output_tokens=max_output_tokens,
                            chat_template=chat_template)

    def create_session(self, *, apply_prompt_template: bool = True, sampler_config: SamplerConfig | None = None,
                       max_output_tokens: int | None = None, lora_config: LoraConfig | None = None,
                       enable_speculative_decoding: bool | None = None) -> Session:
        if enable_speculative_decoding:
            _refuse("enable_speculative_decoding", True, "pocketlm has no speculative decoding drafter")
        return Session(self, apply_prompt_template, sampler_config, max_output_tokens, lora_config)


def _check_max_output(n):
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"max_output_tokens must be a positive integer, got {n!r}")


def _prompt_templates(meta: dict) -> TurnTemplates | None:
    """The file's plain prompt templates, as LiteRT-LM's Session applies them: LlmMetadata's
    prompt_templates, or a .task's prompt_prefix / prompt_suffix."""
    keys = ("user_prefix", "user_suffix", "model_prefix", "model_suffix", "system_prefix", "system_suffix")
    if any(meta.get(k) for k in keys):
        return TurnTemplates(**{k: meta.get(k) or "" for k in keys})
    if meta.get("prompt_prefix") or meta.get("prompt_suffix"):
        return TurnTemplates(user_prefix=meta.get("prompt_prefix") or "", model_prefix=meta.get("prompt_suffix") or "")
    return None


def _generate(engine: _Engine, session, hook: Constraint, on_text, cancelled: threading.Event):
    """One response on the session, under the engine's one-at-a-time lock."""
    if not engine.busy.acquire(blocking=False):
        raise RuntimeError("Previous invocation still processing.")
    try:
        session.decode_hook = hook
        return session.generate(on_text, cancelled)
    finally:
        session.decode_hook = None
        engine.busy.release()


class _EngineSession:
    """What a Session and a Conversation share: one engine session of the Engine's, its cancel event and
    timing, and closing (by close() or a with block, or with the Engine)."""

    def _open(self, engine: Engine, sampler_config, templates, lora_config, t0: float) -> None:
        e = self._engine
        self._s = e.new_session(_sampler(sampler_config, e.metadata), templates, engine._lora(lora_config))
        self._cancel = threading.Event()
        self._timing = _Timing()
        self._timing.init_s = engine._init_s + time.perf_counter() - t0
        self._closed = False

    def _live(self):
        if self._closed or self._owner._closed:
            raise RuntimeError(f"{type(self).__name__} is closed.")
        return self._s

    def get_benchmark_info(self) -> BenchmarkInfo:
        self._live()
        if not self._owner.enable_benchmark:
            raise RuntimeError("Failed to get benchmark info.")
        return _benchmark_info(self._timing)

    def cancel_process(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._s.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self.close()


class Session(_EngineSession):
    """litert_lm.Session: prefill text, decode a response, score texts."""

    def __init__(self, engine: Engine, apply_prompt_template: bool, sampler_config, max_output_tokens, lora_config):
        _check_max_output(max_output_tokens)
        t0 = time.perf_counter()
        e = engine._live()
        self._owner, self._engine, self.max_output_tokens = engine, e, max_output_tokens
        templates = _prompt_templates(e.metadata) if apply_prompt_template else None
        self._open(engine, sampler_config, templates, lora_config, t0)

    def run_prefill(self, contents: list[str]) -> None:
        s = self._live()
        if isinstance(contents, str) or not isinstance(contents, collections.abc.Sequence):
            raise TypeError(f"contents is a list of str, not {type(contents).__name__}")
        for text in contents:
            if not isinstance(text, str):
                raise TypeError(f"contents holds str only, not {type(text).__name__}")
            try:
                s.add_query_chunk(text)
            except ValueError as err:
                raise RuntimeError(f"litert_lm_session_run_prefill failed: {err}") from err

    def _decode(self, on_text) -> str:
        s = self._live()
        if not s.in_user_turn:
            raise RuntimeError("litert_lm_session_run_decode failed: Session is not prefilled yet.")
        self._cancel.clear()
        text = _generate(self._engine, s, Constraint(self._engine, None, self.max_output_tokens), on_text,
                         self._cancel)
        self._timing.stats = s.last_stats
        return text

    def run_decode(self) -> Responses:
        return Responses(texts=[self._decode(lambda piece: None)])

    def run_decode_async(self) -> collections.abc.Iterator[Responses]:
        for piece in _streamed(self._decode):
            yield Responses(texts=[piece], scores=[], token_lengths=[])

    def run_text_scoring(self, target_text: list[str], store_token_lengths: bool = False) -> Responses:
        """The log-likelihood of each target after what the session holds (the session is not changed)."""
        s = self._live()
        held = list(s.tokens) + list(s.pending)
        if not held:
            raise RuntimeError("litert_lm_session_run_text_scoring failed: Session is not prefilled yet.")
        out = Responses()
        for text in target_text:
            ids = self._engine.tokenizer.encode(text)
            if not ids:
                raise ValueError(f"target text {text!r} has no tokens")
            logits = _all_logits(self._engine, held + ids[:-1])[len(held) - 1:]
            z = logits - logits.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            scores = [float(logp[i, t]) for i, t in enumerate(ids)]
            out.texts.append(text)
            out.scores.append(float(sum(scores)))
            out.token_scores.append(scores)
            if store_token_lengths:
                out.token_lengths.append(len(ids))
        return out


def _all_logits(engine: _Engine, ids: list[int]) -> np.ndarray:
    """Every position's logits over ids, run afresh (a scoring pass of its own)."""
    if engine.native is not None:
        from ..engine.native import NativeTokens

        return NativeTokens(engine.native, engine.max_tokens, engine.kv_type).eval(ids, all_logits=True)
    from ..model.forward import KVCache

    return np.asarray(engine.model.forward(ids, KVCache(engine.model.cfg, engine.max_tokens, engine.kv_type),
                                           last_only=False))


def _streamed(run) -> collections.abc.Iterator[str]:
    """run(on_text) on a worker thread, its pieces yielded here as they come; its error raised here."""
    q: queue.Queue = queue.Queue()
    done = object()

    def work():
        try:
            run(q.put)
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            q.put(e)
        q.put(done)

    t = threading.Thread(target=work, name="pocketlm-litertlm", daemon=True)
    t.start()
    while True:
        item = q.get()
        if item is done:
            break
        if isinstance(item, BaseException):
            t.join()
            raise item
        yield item
    t.join()


class Conversation(_EngineSession):
    """litert_lm.Conversation: messages in, the model's message out, the whole
    conversation rendered by the chat template and prefilled turn by turn."""

    def __init__(self, engine: Engine, *, messages, tools, tool_event_handler, automatic_tool_calling,
                 extra_context, thinking_config, sampler_config, system_message, constrained_decoding_config,
                 lora_config, max_output_tokens, chat_template):
        t0 = time.perf_counter()
        _check_max_output(max_output_tokens)
        _check_penalties(None, None, None, thinking_config)
        e = engine._live()
        self._owner, self._engine = engine, e
        self.messages = list(messages or [])
        self.tools = list(tools or [])
        self.tool_event_handler = tool_event_handler
        self.automatic_tool_calling = automatic_tool_calling
        self.extra_context = dict(extra_context or {})
        self.thinking_config, self.sampler_config = thinking_config, sampler_config
        self.lora_config, self.max_output_tokens, self.chat_template = lora_config, max_output_tokens, chat_template
        self.constrained_decoding_config = constrained_decoding_config
        if not isinstance(automatic_tool_calling, bool):
            raise TypeError("automatic_tool_calling is a bool")
        self._tools_map: dict[str, Tool] = {}
        self._tool_descriptions = []
        for t in self.tools:
            if not isinstance(t, Tool):
                if not callable(t):
                    raise TypeError(f"a tool is a Python function or a litert_lm Tool, not {type(t).__name__}")
                t = tool_from_function(t)
            desc = t.get_tool_description()
            if "function" not in desc or "name" not in desc["function"]:
                raise ValueError("interfaces.Tool description must contain ['function']['name']")
            self._tools_map[desc["function"]["name"]] = t
            self._tool_descriptions.append(desc)
        template = chat_template or e.tokenizer.chat_template or e.metadata.get("chat_template")
        self._renderer = _chat.Renderer(template) if template else None
        self._family = _chat.tool_family(template)
        self._history = ([{"role": "system", "content": [{"type": "text", "text": system_message}]}]
                         if system_message else [])
        self._history += [_chat.as_template_message(normalize_message(m)) for m in self.messages]
        self._rendered = ""  # what the KV cache holds, as rendered text
        self._open(engine, sampler_config, None, lora_config, t0)

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def token_count(self) -> int:
        """Tokens in the KV cache (prefill + decode)."""
        return self._live().n_tokens

    # -- rendering -----------------------------------------------------------------------------------------

    def _render(self, messages, add_generation_prompt: bool) -> str:
        enable = self.thinking_config.enable_thinking if self.thinking_config is not None else None
        if self._renderer is not None:
            return self._renderer.render(messages, self._tool_descriptions, add_generation_prompt,
                                         self.extra_context, enable)
        t = self._engine.templates or TurnTemplates()  # no Jinja template: the model's turn templates
        out = [t.preamble] if messages and messages[0]["role"] != "system" else []
        for m in messages:
            text = "".join(p.get("text", "") if p.get("type") == "text" else json.dumps(p.get("response"))
                           for p in m["content"])
            pre, post = {"system": (t.system_prefix, t.system_suffix), "assistant": (t.model_prefix, t.model_suffix)
                         }.get(m["role"], (t.user_prefix, t.user_suffix))
            out.append(pre + text + post)
        if add_generation_prompt:
            out.append(t.model_prefix)
        return "".join(out)

    def _turn_text(self, new: list[dict]) -> str:
        """The text this turn prefills: the render with the new messages and the generation prompt, less what
        the conversation's render already held."""
        full = self._render(self._history + new, True)
        if full.startswith(self._rendered):
            return full[len(self._rendered):]
        n = 0
        while n < min(len(full), len(self._rendered)) and full[n] == self._rendered[n]:
            n += 1
        log.warning("pocketlm: the chat template rewrote earlier turns; prefilling from character %d", n)
        return full[n:]

    def render_message_to_string(self, message) -> str:
        self._live()
        return self._turn_text([_chat.as_template_message(normalize_message(message))])

    # -- messages ------------------------------------------------------------------------------------------

    def _format_for(self, current, response_format):
        """litert_lm drops response_format on a turn that may call tools (automatic calling, tools given, not a
        tool response); pocketlm's tool-call grammar (extras) is never dropped."""
        is_tool = bool(current) and current[0].get("role") == "tool"
        if response_format is not None and response_format.type == LARK:
            return response_format
        if self.automatic_tool_calling and self._tools_map and not is_tool:
            return None
        return response_format

    def _check_format(self, response_format):
        if not response_format:
            return
        c = self.constrained_decoding_config
        if not c or not c.enable or c.provider != LiteRtLmConstraintProviderType.LL_GUIDANCE:
            raise ValueError("response_format cannot be used unless constrained_decoding_config with LL_GUIDANCE "
                             "provider is set in create_conversation.")

    def _one_turn(self, new: list[dict], on_text, response_format, max_output_tokens) -> dict:
        s = self._live()
        try:
            text = self._turn_text(new)
        except RuntimeError as err:
            raise RuntimeError(f"litert_lm_conversation_send_message failed: INTERNAL: {err}") from None
        constraint = Constraint(self._engine, response_format,
                                max_output_tokens if max_output_tokens is not None else self.max_output_tokens)
        try:
            s.add_query_chunk(text)
        except ValueError as err:
            raise RuntimeError(f"litert_lm_conversation_send_message failed: {err}") from err
        self._cancel.clear()
        answer = _generate(self._engine, s, constraint, on_text, self._cancel)
        self._timing.stats = s.last_stats
        if constraint.cut_short():
            # what the format asked for is unfinished (a forced tool call without its closing tag stays text)
            log.warning("pocketlm: the response reached max_output_tokens=%d before its response format was "
                        "complete", constraint.limit)
        self._last_answer = answer
        rest, calls = _chat.parse_tool_calls(answer, self._family) if self._tools_map or \
            (response_format is not None and response_format.type == LARK) else (answer, [])
        response: dict[str, Any] = {"role": "assistant"}
        if rest or not calls:
            response["content"] = [{"type": "text", "text": rest}]
        if calls:
            response["tool_calls"] = calls
        kept = dict(response, content=[{"type": "text", "text": answer}]) if calls else dict(response)
        self._history += new + [_chat.as_template_message(kept)]
        self._rendered = self._render(self._history, False)
        return response

    def _tool_responses(self, response: dict) -> list[dict]:
        out = []
        for call in response.get("tool_calls") or []:
            if "function" not in call:
                raise ValueError("Missing 'function' in tool_call")
            name, args = call["function"].get("name", ""), call["function"].get("arguments", {})
            if self.tool_event_handler and not self.tool_event_handler.approve_tool_call(call):
                continue
            tool = self._tools_map.get(name)
            if tool is None:
                result = f"Error: interfaces.Tool {name} not found"
            else:
                try:
                    result = tool.execute(args)
                except Exception as e:  # noqa: BLE001 - the error goes back to the model, as LiteRT-LM sends it
                    log.exception("interfaces.Tool execution failed: %s", name)
                    result = f"Error: {e}"
            if self.tool_event_handler:
                result = self.tool_event_handler.process_tool_response(result)
            out.append({"role": "tool", "content": [{"type": "tool_response", "name": name, "response": result}]})
        return out

    def _run(self, message, on_text, *, repetition_penalty_config, no_repeat_ngram_config, suppress_tokens_config,
             max_output_tokens, thinking_config, response_format, stream_tools: bool):
        self._check_format(response_format)
        self._live()
        _check_max_output(max_output_tokens)
        _check_penalties(repetition_penalty_config, no_repeat_ngram_config, suppress_tokens_config, thinking_config)
        if thinking_config is not None:
            self.thinking_config = thinking_config
        current = normalize_message(message)
        current = [_chat.as_template_message(m) for m in (current if isinstance(current, list) else [current])]
        for _ in range(MAX_TOOL_ROUNDS):
            fmt = self._format_for(current, response_format)
            stream = _chat.ToolCallStream(self._family, on_text) if (stream_tools and self._tools_map) else None
            response = self._one_turn(current, stream.feed if stream else on_text, fmt, max_output_tokens)
            if stream is not None:
                stream.finish(self._last_answer, response.get("tool_calls") or [])
            if not self.automatic_tool_calling:
                return response
            tool_responses = self._tool_responses(response)
            if not tool_responses:
                return response
            current = tool_responses
            if response_format is not None and response_format.type == LARK:
                response_format = None  # a forced call is the user's turn's; the model answers the result freely
        return response

    def send_message(self, message, *, repetition_penalty_config: RepetitionPenaltyConfig | None = None,
                     no_repeat_ngram_config: NoRepeatNgramConfig | None = None,
                     suppress_tokens_config: SuppressTokensConfig | None = None,
                     max_output_tokens: int | None = None, thinking_config: ThinkingConfig | None = None,
                     response_format: ResponseFormat | None = None) -> Message:
        response = self._run(message, lambda p: None, repetition_penalty_config=repetition_penalty_config,
                             no_repeat_ngram_config=no_repeat_ngram_config,
                             suppress_tokens_config=suppress_tokens_config, max_output_tokens=max_output_tokens,
                             thinking_config=thinking_config, response_format=response_format, stream_tools=False)
        return Message.from_json(response)

    def send_message_async(self, message, *, repetition_penalty_config: RepetitionPenaltyConfig | None = None,
                           no_repeat_ngram_config: NoRepeatNgramConfig | None = None,
                           suppress_tokens_config: SuppressTokensConfig | None = None,
                           max_output_tokens: int | None = None, thinking_config: ThinkingConfig | None = None,
                           response_format: ResponseFormat | None = None) -> collections.abc.Iterator[Message]:
        """The response as chunks of text, in order, as LiteRT-LM streams it: with tools, the text of every
        round streams as it comes, and a tool call is held back (run, with automatic calling; given as the
        last message, with its tool_calls, without)."""
        self._check_format(response_format)
        self._live()
        final: list = []

        def run(on_text):
            final.append(self._run(message, on_text, repetition_penalty_config=repetition_penalty_config,
                                   no_repeat_ngram_config=no_repeat_ngram_config,
                                   suppress_tokens_config=suppress_tokens_config,
                                   max_output_tokens=max_output_tokens, thinking_config=thinking_config,
                                   response_format=response_format, stream_tools=True))

        for piece in _streamed(run):
            yield Message.from_json({"role": "assistant", "content": [{"type": "text", "text": piece}]})
        response = final[0]
        if response.get("tool_calls"):  # automatic calling off, or its rounds used up: the call is the caller's
            yield Message.from_json({"role": "assistant", "tool_calls": response["tool_calls"]})


class Benchmark:
    """litert_lm.Benchmark: prefill_tokens of the prompt's tokens (cut, or padded with token 0), then
    decode_tokens sampled whatever they are (stop tokens masked), on a fresh engine."""

    def __init__(self, model_path: str, backend: Backend, prefill_tokens: int = 256, decode_tokens: int = 256,
                 max_num_tokens: int | None = None, cache_dir: str | None = None,
                 enable_speculative_decoding: bool | None = None, prompt: str = "How are you",
                 activation_data_type: ActivationDataType | None = None,
                 use_ringbuffers_local_attention: bool | None = None, enable_ynnpack: bool | None = None, *,
                 device=None, engine: str | None = None):
        self.model_path, self.backend, self.prefill_tokens, self.decode_tokens = model_path, backend, \
            prefill_tokens, decode_tokens
        self.max_num_tokens, self.cache_dir, self.enable_speculative_decoding = max_num_tokens, cache_dir, \
            enable_speculative_decoding
        self.prompt, self.activation_data_type = prompt, activation_data_type
        self.use_ringbuffers_local_attention, self.enable_ynnpack = use_ringbuffers_local_attention, enable_ynnpack
        self._device, self._kind = device, engine

    def run(self) -> BenchmarkInfo:
        for name in ("prefill_tokens", "decode_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        n = self.max_num_tokens or self.prefill_tokens + self.decode_tokens + 1
        with Engine(self.model_path, self.backend, max_num_tokens=n, cache_dir=self.cache_dir,
                    enable_speculative_decoding=self.enable_speculative_decoding,
                    activation_data_type=self.activation_data_type, enable_benchmark=True,
                    use_ringbuffers_local_attention=self.use_ringbuffers_local_attention,
                    enable_ynnpack=self.enable_ynnpack, device=self._device, engine=self._kind) as eng:
            e = eng._live()
            ids = (e.tokenizer.encode(self.prompt) + [0] * self.prefill_tokens)[: self.prefill_tokens]
            s = e.new_session(Sampler(1, 1.0, 1.0, 0), None)
            try:
                s.pending = list(ids)
                s.in_user_turn = True
                if e.max_tokens < len(ids) + self.decode_tokens + 1:
                    raise ValueError(f"prefill_tokens {self.prefill_tokens} + decode_tokens {self.decode_tokens} "
                                     f"do not fit max_num_tokens {e.max_tokens}")
                hook = _NoStop(e.stop_ids, self.decode_tokens)
                _generate(e, s, hook, lambda p: None, threading.Event())
                timing = _Timing()
                timing.init_s, timing.stats = eng._init_s, s.last_stats
                return _benchmark_info(timing)
            finally:
                s.release()


class _NoStop:
    """A benchmark's decode hook: stop tokens masked, the response ended after n tokens."""

    def __init__(self, stop_ids, n):
        self.stop, self.n, self.count = np.array(sorted(stop_ids), dtype=np.int64), n, 0

    def mask(self, logits):
        logits[self.stop[self.stop < logits.shape[-1]]] = -np.inf

    def accept(self, token) -> bool:
        self.count += 1
        return self.count >= self.n
