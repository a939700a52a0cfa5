"""The Python engine's Session: model/forward.py's forward pass over a kernel
backend (NumPy, the oracle; Numba, the fallback where libpocketlm is not built),
its KV cache a NumPy array. It adds no text handling: query chunks, templates
and limits are engine/base.py's Session, which the native engine shares.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..model.forward import PREFILL_CHUNK, KVCache
from ..model.info import kv_cache_bytes
from ..sampling import Sampler
from ..tokenizer import StreamDecoder
from .base import GenerationStats, Session


@dataclass
class PythonSession(Session):
    """A conversation whose tokens run through the Python forward pass."""

    cache: KVCache = field(init=False)

    def __post_init__(self):
        cfg, n = self.engine.model.cfg, self.engine.max_tokens
        self._kv_bytes = kv_cache_bytes(self.engine.model, n, self.engine.kv_type)
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

    def _forward(self, ids: list[int], pos_end: int | None = None) -> np.ndarray:
        logits = self.engine.model.forward(ids, self.cache, last_only=True, lora=self.lora, pos_end=pos_end)
        self.tokens += ids
        return logits[-1]

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
        pos_end = self.cache.n_past + len(todo)  # the whole prompt's end, however it is batched (longrope)
        for i in range(0, len(todo), PREFILL_CHUNK):
            chunk = todo[i:i + PREFILL_CHUNK]
            with self.engine.scratch(len(chunk)):
                logits = self._forward(chunk, pos_end)
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
            hook = self.decode_hook
            if hook is not None:
                hook.mask(logits)
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
            ends = hook is not None and hook.accept(token)
            if len(self.tokens) + 1 >= limit:
                # input + output tokens reached maxTokens: the response ends here, as on Android
                self.pending.append(token)
                stats.stop_reason = "max_tokens"
                break
            logits = self._forward([token])
            if ends:  # the hook's limit: the token is in the cache, as the C loop leaves it
                stats.stop_reason = "max_output_tokens"
                break
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

    def clone(self) -> PythonSession:
        """A fork holding the same conversation: the filled part of the KV cache
        is copied (nothing is prefilled again) and the sampler's random stream
        continues from the same state in both."""
        other = type(self)(self.engine, Sampler(self.sampler.top_k, self.sampler.top_p, self.sampler.temperature,
                                             self.sampler.seed), self.templates, self.lora)
        other.sampler.rng.bit_generator.state = self.sampler.rng.bit_generator.state
        self.cache.copy_into(other.cache)
        other.tokens, other.pending = list(self.tokens), list(self.pending)
        other.in_user_turn, other.turns, other.formatted = self.in_user_turn, self.turns, self.formatted
        return other
