"""The native engine: libpocketlm's model, KV cache, forward pass, sampler and
generate loop (cffi over the C engine, the default) under engine/base.py's
Engine / Session. It only wraps C: no forward pass or sampling of its own, and
no ffi / lib but the ones kernels/native.py loads.

Text goes through libpocketlm too (the C text path, c_text_path): the
tokenizer is libpocketlm's, read from the same GGUF keys, tokenizer.json or
SentencePiece model as the Python one, so the ids the Python task API sends
are the ids MediaPipe's C API (include/llm_inference_engine.h) sends for the
same text. What Python still does: stop tokens, device accounting, and
rendering chat templates with Jinja (templates.py says where that and C's
family detection meet). Per response it makes one call,
plm_session_generate, which prefills, samples and decodes in C and calls
back once per token with the id, which the C tokenizer turns into text.
The C sources: native/src/model/model.c, engine/forward.c, engine/session.c.

Where the weights come from: a GGUF file (or a .task whose model entry is
stored, not compressed) is opened by the C engine itself, which maps it and
checks it as the Python reader does; a checkpoint folder (converted in
memory) or a compressed bundle entry is handed over as tensors the Python
loader already holds, which the C model borrows.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import numpy as np

from ..errors import ModelFileError
from ..model.config import ModelConfig
from ..model.forward import TrafficCounters, Weight
from ..model.quant import quant_type
from ..sampling import Sampler
from ..tokenizer import StreamDecoder
from .base import GenerationStats, Session


def _lib():
    from ..kernels.native import ffi, lib

    return ffi, lib


def c_text_path(tok):
    """(libpocketlm's tokenizer for the vocabulary tok was read from, None), or
    (None, why not): a vocabulary that no longer exists as a file (a
    compressed bundle entry) or one the C tokenizer refuses by name. The C
    tokenizer takes the Python one's BOS/EOS, add_bos and chat template."""
    from ..kernels.native import CTokenizer

    from ..tokenizer import ByteMappedSentencePiece

    origin = getattr(tok, "origin", None)
    if origin is None:
        return None, "the vocabulary was read from an inflated bundle entry that is gone"
    if isinstance(tok, ByteMappedSentencePiece):
        return None, "the bytes-to-unicode mapping around the SentencePiece model is applied in Python only"
    try:
        if origin[0] == "gguf":
            ctok = CTokenizer.from_gguf(*origin[1:])
        else:
            ctok = CTokenizer.from_bytes(origin[1], tok.bos_id, tok.eos_ids)
    except (ValueError, ModelFileError, OSError) as e:
        return None, str(e)
    if ctok.vocab_size != tok.vocab_size:
        return None, f"the C tokenizer reads {ctok.vocab_size} tokens where Python reads {tok.vocab_size}"
    ctok.bos_id, ctok.eos_ids, ctok.add_bos = tok.bos_id, tuple(tok.eos_ids), tok.add_bos
    ctok.chat_template = tok.chat_template
    return ctok, None


def _check(status: int, err, what: str, exc=ValueError) -> None:
    from ..kernels.native import raise_status

    raise_status(status, err, what, exc)


_ENUMS = {"norm": {"rms": 0, "layer": 1}, "act": {"silu": 0, "gelu": 1, "gelu_tanh": 2},
          "rope_mode": {"neox": 0, "gptj": 1}, "positions": {"rope": 0, "learned": 1, "alibi": 2}}


def c_config(cfg: ModelConfig):
    """ModelConfig as the C engine's plm_model_config."""
    ffi, _ = _lib()
    c = ffi.new("plm_model_config *")
    arch = cfg.arch.encode()
    if len(arch) >= len(c.arch) or len(cfg.rope_freq_factors) > len(c.rope_freq_factors) or \
            len(cfg.rope_freq_factors_long) > len(c.rope_freq_factors_long) or \
            cfg.n_layers > len(c.sliding_window_layer) or len(cfg.eos_token_ids) > len(c.eos_token_ids):
        raise ValueError(f"the native engine cannot hold this config ({cfg.arch}, {cfg.n_layers} layers)")
    c.arch = arch
    for name in ("vocab_size", "hidden_size", "n_layers", "n_heads", "n_kv_heads", "head_dim", "intermediate_size",
                 "max_position_embeddings", "norm_eps", "norm_w_offset", "rope_theta", "rope_freq_scale", "rot_dim",
                 "embed_scale", "query_scale", "attn_softcap", "final_softcap", "sliding_window", "rope_local_theta",
                 "rope_local_freq_scale", "rope_long_after", "rope_attn_factor"):
        setattr(c, name, getattr(cfg, name))
    for name in ("gated_mlp", "qkv_bias", "o_bias", "mlp_bias", "tie_embeddings", "post_norms", "parallel_residual",
                 "output_bias", "qk_norm"):
        setattr(c, name, int(bool(getattr(cfg, name))))
    for name, table in _ENUMS.items():
        setattr(c, name, table[getattr(cfg, name)])
    c.n_rope_freq_factors = len(cfg.rope_freq_factors)
    for i, v in enumerate(cfg.rope_freq_factors):
        c.rope_freq_factors[i] = v
    c.n_rope_freq_factors_long = len(cfg.rope_freq_factors_long)
    for i, v in enumerate(cfg.rope_freq_factors_long):
        c.rope_freq_factors_long[i] = v
    for i in cfg.sliding_window_layers:
        c.sliding_window_layer[i] = 1
    c.bos_token_id = -1 if cfg.bos_token_id is None else cfg.bos_token_id
    c.n_eos = len(cfg.eos_token_ids)
    for i, v in enumerate(cfg.eos_token_ids):
        c.eos_token_ids[i] = v
    return c


def _tensor_refs(entries):
    """A plm_tensor_ref array over (name, GGML type id, dims in GGUF order, contiguous array) entries, and the
    C name strings it points to (keep both alive while C reads them; the arrays are the caller's)."""
    ffi, _ = _lib()
    refs = ffi.new("plm_tensor_ref[]", max(1, len(entries)))
    cnames = [ffi.new("char[]", name.encode()) for name, _, _, _ in entries]
    for r, cname, (_, tid, dims, data) in zip(refs, cnames, entries):
        r.name, r.type, r.n_dims = cname, tid, len(dims)
        for d, v in enumerate(dims):
            r.dims[d] = v
        r.data = ffi.cast("void *", ffi.from_buffer(data))
        r.nbytes = data.nbytes
    return refs, cnames


class NativeModel:
    """A plm_model: opened from a file by the C engine, or over the tensors of a
    Python Model (which it keeps alive)."""

    def __init__(self, handle, cfg: ModelConfig, keep=None):
        ffi, lib = _lib()
        self.handle = ffi.gc(handle, lib.plm_model_free)
        self.cfg = cfg
        self._keep = keep

    @classmethod
    def open(cls, path, offset: int = 0, length: int = 0, cfg: ModelConfig | None = None) -> "NativeModel":
        ffi, lib = _lib()
        out, err = ffi.new("plm_model **"), ffi.new("char **")
        _check(lib.plm_model_open(str(path).encode(), offset, length, out, err), err, str(path), ModelFileError)
        return cls(out[0], cfg)

    @classmethod
    def from_model(cls, model, what: str) -> "NativeModel":
        """Over a Python Model's tensors (canonical names, storage types kept)."""
        ffi, lib = _lib()
        names, arrays = [], []
        for name, w in model.w.items():
            if isinstance(w, Weight):
                qt = quant_type(w.qtype)
                data = np.ascontiguousarray(w.data)
                rows = data.shape[0]
                cols = data.shape[1] // qt.block_bytes * qt.block_size if qt.is_block else data.shape[1]
                dims, tid = (cols, rows), qt.id
            else:
                data = np.ascontiguousarray(w, dtype=np.float32)
                dims, tid = tuple(reversed(data.shape)), 0
            names.append((name, tid, dims))
            arrays.append(data)
        refs, _names = _tensor_refs([(n, tid, dims, data) for (n, tid, dims), data in zip(names, arrays)])
        out, err = ffi.new("plm_model **"), ffi.new("char **")
        _check(lib.plm_model_create(c_config(model.cfg), refs, len(names), what.encode(), out, err), err, what,
               ModelFileError)
        return cls(out[0], model.cfg, keep=(model, arrays))

    @property
    def vocab_size(self) -> int:
        return _lib()[1].plm_model_get_config(self.handle).vocab_size

    @property
    def weight_bytes(self) -> int:
        return _lib()[1].plm_model_weight_bytes(self.handle)

    @property
    def owned_bytes(self) -> int:
        return _lib()[1].plm_model_owned_bytes(self.handle)

    def session_params(self, max_tokens: int, kv_type: str, sampler: Sampler | None = None, n_threads: int = 0,
                       lora: "NativeLora | None" = None):
        ffi, lib = _lib()
        p = ffi.new("plm_session_params *")
        lib.plm_session_params_default(p)
        p.max_tokens = max_tokens
        p.kv_type = quant_type(kv_type).id
        p.n_threads = n_threads
        if lora is not None:
            p.lora = lora.handle  # the C session takes its own reference
        if sampler is not None:
            p.top_k, p.top_p, p.temperature, p.seed = sampler.top_k, sampler.top_p, sampler.temperature, sampler.seed
        return p

    def session_bytes(self, max_tokens: int, kv_type: str) -> int:
        """What a session of max_tokens allocates in C (KV cache, buffers)."""
        return _lib()[1].plm_session_bytes(self.handle, self.session_params(max_tokens, kv_type))


class NativeLora:
    """A plm_lora: a LoRA adapter's pairs copied into the C engine (lora.c),
    from a Python LoraAdapter (any source) or from a GGUF adapter file."""

    def __init__(self, handle, what: str):
        ffi, lib = _lib()
        self.handle = ffi.gc(handle, lib.plm_lora_free)
        self.what = what

    @classmethod
    def create(cls, model: NativeModel, adapter) -> "NativeLora":
        """From a model.lora.LoraAdapter laid out for the model's weights (scales folded into B: alpha 0)."""
        ffi, lib = _lib()
        entries = []
        for target, pair in adapter.pairs.items():
            for half, arr in (("lora_a", pair.a), ("lora_b", pair.b)):
                arr = np.ascontiguousarray(arr, dtype=np.float32)
                entries.append((f"{target}.{half}", 0, (arr.shape[1], arr.shape[0]), arr))
        refs, _names = _tensor_refs(entries)  # plm_lora_create copies them
        out, err = ffi.new("plm_lora **"), ffi.new("char **")
        _check(lib.plm_lora_create(model.handle, refs, len(entries), 0.0, str(adapter.path).encode(), out, err), err,
               str(adapter.path), ModelFileError)
        return cls(out[0], str(adapter.path))

    @classmethod
    def open(cls, model: NativeModel, path) -> "NativeLora":
        """A GGUF LoRA adapter read by the C engine itself."""
        ffi, lib = _lib()
        out, err = ffi.new("plm_lora **"), ffi.new("char **")
        _check(lib.plm_lora_open(model.handle, str(path).encode(), 0, 0, out, err), err, str(path), ModelFileError)
        return cls(out[0], str(path))

    @property
    def rank(self) -> int:
        return _lib()[1].plm_lora_rank(self.handle)

    @property
    def nbytes(self) -> int:
        return _lib()[1].plm_lora_bytes(self.handle)

    @property
    def n_weights(self) -> int:
        return _lib()[1].plm_lora_n_weights(self.handle)


def new_c_session(model: NativeModel, params):
    ffi, lib = _lib()
    out, err = ffi.new("plm_session **"), ffi.new("char **")
    _check(lib.plm_session_create(model.handle, params, out, err), err, "session")
    return out[0]


def add_c_tokens(handle, ids) -> np.ndarray:
    """Hands ids to a C session (pending there until run); returns them as int32."""
    ffi, lib = _lib()
    ids = np.ascontiguousarray(ids, dtype=np.int32).reshape(-1)
    err = ffi.new("char **")
    _check(lib.plm_session_add_tokens(handle, ffi.cast("int32_t *", ffi.from_buffer(ids)), ids.size, err), err,
           "add tokens")
    return ids


def clone_c_session(handle):
    ffi, lib = _lib()
    out, err = ffi.new("plm_session **"), ffi.new("char **")
    _check(lib.plm_session_clone(handle, out, err), err, "clone")
    return out[0]


def generate_c(handle, stop_ids, cb, on_logits=None):
    """plm_session_generate (plm_session_generate_masked with on_logits): (status, stats, error
    out-param) for the caller to check."""
    ffi, lib = _lib()
    stops = np.ascontiguousarray(stop_ids, dtype=np.int32)
    stats, err = ffi.new("plm_generate_stats *"), ffi.new("char **")
    ptr = ffi.cast("int32_t *", ffi.from_buffer(stops)) if stops.size else ffi.NULL
    if on_logits is not None:
        return lib.plm_session_generate_masked(handle, ptr, stops.size, cb, on_logits, ffi.NULL, stats, err), \
            stats, err
    return lib.plm_session_generate(handle, ptr, stops.size, cb, ffi.NULL, stats, err), stats, err


def _traffic(t) -> TrafficCounters:
    return TrafficCounters(t.tokens, t.weight_bytes, t.kv_bytes, t.flops)


_STOP_REASONS = {0: "", 1: "stop_token", 2: "max_tokens", 3: "cancelled"}


class NativeTokens:
    """Evaluation without the task layer (tests, tools): a C session and its logits."""

    def __init__(self, model: NativeModel, max_tokens: int, kv_type: str = "F16", sampler: Sampler | None = None,
                 n_threads: int = 0, lora: NativeLora | None = None):
        ffi, lib = _lib()
        self.model = model
        self.handle = ffi.gc(new_c_session(model, model.session_params(max_tokens, kv_type, sampler, n_threads, lora)),
                             lib.plm_session_free)

    def add(self, ids) -> None:
        add_c_tokens(self.handle, ids)

    def eval(self, ids, all_logits: bool = False) -> np.ndarray:
        """Runs ids and returns the logits of the last ([vocab]) or of each ([n, vocab])."""
        ffi, lib = _lib()
        ids = add_c_tokens(self.handle, ids)
        V = self.model.vocab_size
        out = np.empty((ids.size if all_logits else 1, V), dtype=np.float32)
        err = ffi.new("char **")
        _check(lib.plm_session_eval(self.handle, ffi.cast("float *", ffi.from_buffer(out)), int(all_logits), err), err,
               "eval")
        return out if all_logits else out[0]

    def predict(self) -> int:
        ffi, lib = _lib()
        tok, err = ffi.new("int32_t *"), ffi.new("char **")
        _check(lib.plm_session_predict(self.handle, tok, err), err, "predict")
        return tok[0]

    def generate(self, stop_ids=(), on_token: Callable[[int], object] | None = None):
        """The C generate loop over what is pending (see plm_session_generate);
        returns its plm_generate_stats. on_token(id) returning true stops it."""
        ffi = _lib()[0]
        cb = ffi.callback("int(void *, int32_t)", lambda _u, t: 1 if on_token(t) else 0) if on_token else ffi.NULL
        st, stats, err = generate_c(self.handle, stop_ids, cb)
        _check(st, err, "generate")
        return stats

    def clone(self) -> "NativeTokens":
        ffi, lib = _lib()
        other = NativeTokens.__new__(NativeTokens)
        other.model = self.model
        other.handle = ffi.gc(clone_c_session(self.handle), lib.plm_session_free)
        return other

    @property
    def size(self) -> int:
        return _lib()[1].plm_session_size(self.handle)

    @property
    def memory(self) -> int:
        return _lib()[1].plm_session_memory(self.handle)


class NativeSession(Session):
    """A conversation whose tokens run in a C session: base.Session's text
    handling (query chunks, templates, limits) over plm_session_*. ``tokens``
    are the ids handed to the C session (run, or left pending there at
    maxTokens), ``pending`` those added in Python and not handed over yet."""

    def __post_init__(self):
        eng = self.engine
        self._native = eng.native  # the C model outlives its sessions
        self._params = eng.native.session_params(eng.max_tokens, eng.kv_type, self.sampler,
                                                 lora=self.lora.native if self.lora is not None else None)
        self._open(lambda: new_c_session(eng.native, self._params))

    def _open(self, make) -> None:
        ffi, lib = _lib()
        eng = self.engine
        total = lib.plm_session_bytes(eng.native.handle, self._params)
        if eng.kind == "litert":  # the graph's whole KV cache, XNNPack's packed weights, the activations
            from ..model.litert_memory import session_memory

            self._held = () if eng.device is None else tuple(session_memory(eng.model, eng.native, eng.max_tokens))
        else:
            kv = lib.plm_session_kv_bytes(eng.native.handle, self._params)  # rings for sliding-window layers
            self._held = (("KV cache", kv), ("activations", total - kv))
        if eng.device is not None:
            # what the C session will allocate, counted before it is
            eng.device.memory.reserve_parts(list(self._held))
            self._finalizer = weakref.finalize(self, _release_all, eng.device.memory, self._held)
        try:
            # the destructor holds the model: a session is freed before its model, whatever order the
            # collector takes them in (a LiteRT session's interpreter runs over the model's graph)
            self.handle = ffi.gc(make(), lambda h, model=self._native: lib.plm_session_free(h))
        except Exception:
            if eng.device is not None:
                self._finalizer()
            raise
        self.cache = None  # no Python KV cache: the C session holds it
        self._pushed = (self.sampler, self.sampler.seed)

    def _push_sampler(self) -> None:
        """The task layer swaps the sampler when session options change: the C
        session takes its settings, and a new seed restarts the random stream."""
        ffi, lib = _lib()
        smp = self.sampler
        if smp is self._pushed[0]:
            return
        err = ffi.new("char **")
        _check(lib.plm_session_set_sampling(self.handle, smp.top_k, smp.top_p, smp.temperature, err), err,
               "sampling options")
        if smp.seed != self._pushed[1]:
            lib.plm_session_reseed(self.handle, smp.seed)
        self._pushed = (smp, smp.seed)

    def release(self) -> None:
        ffi = _lib()[0]
        h, self.handle = getattr(self, "handle", None), None
        if h is not None:
            ffi.release(h)
        if self.engine.device is not None:
            self._finalizer()

    @property
    def memory_bytes(self) -> int:
        """Bytes the C session allocated: its KV cache and forward-pass buffers."""
        return _lib()[1].plm_session_memory(self.handle) if self.handle is not None else 0

    def generate(self, on_text: Callable[[str], None], cancelled: threading.Event | None = None) -> str:
        ffi, lib = _lib()
        todo = add_c_tokens(self.handle, self._close_turn())
        self.tokens += todo.tolist()
        self._push_sampler()
        stream, pieces, errors = StreamDecoder(self.engine.tokenizer), [], []
        s = self.last_stats = GenerationStats(prefill_tokens=int(todo.size))
        sequences, answer, ended = self.engine.stop_sequences, [], []
        hook, hook_ended = self.decode_hook, []

        def on_token(_user, token):
            try:
                s.decode_tokens += 1  # live, as the Python engine's count is
                self.tokens.append(token)  # run through the model next, or left pending at maxTokens
                answer.append(token)
                piece = stream.push(token)
                if piece:
                    pieces.append(piece)
                    on_text(piece)
                if any(len(q) <= len(answer) and answer[-len(q):] == q for q in sequences):
                    ended.append(True)  # a stop sequence (LiteRT-LM's multi-token stop tokens)
                    return 1
                if hook is not None and hook.accept(token):
                    hook_ended.append(True)
                    return 1
                return 1 if cancelled is not None and cancelled.is_set() else 0
            except BaseException as e:  # raised again once C has returned
                errors.append(e)
                return 1

        def on_logits(_user, logits, n):
            try:
                hook.mask(np.frombuffer(ffi.buffer(logits, n * 4), dtype=np.float32))
                return 0
            except BaseException as e:  # raised again once C has returned
                errors.append(e)
                return 1

        cb = ffi.callback("int(void *, int32_t)", on_token)
        # a hook whose masks is False (a max_output_tokens limit alone) needs no per-step call into Python
        masks = hook is not None and getattr(hook, "masks", True)
        mask_cb = ffi.callback("int(void *, float *, int64_t)", on_logits) if masks else None
        with _CancelWatcher(self.handle, cancelled):
            st, stats, err = generate_c(self.handle, sorted(self.engine.stop_ids), cb, mask_cb)
        if errors:
            if err[0] != ffi.NULL:
                lib.plm_free(err[0])
            raise errors[0]
        _check(st, err, "generate")
        rest = stream.flush()
        if rest:
            pieces.append(rest)
            on_text(rest)
        s.decode_tokens = stats.decode_tokens
        s.prefill_s, s.decode_s, s.time_to_first_token_s = stats.prefill_s, stats.decode_s, \
            stats.time_to_first_token_s
        s.stop_reason = "stop_token" if ended else "max_output_tokens" if hook_ended else \
            _STOP_REASONS[stats.stop_reason]
        s.prefill_traffic, s.decode_traffic = _traffic(stats.prefill), _traffic(stats.decode)
        if self.engine.device is not None:
            self.engine.device.last_stats = s
        self.turns += 1
        return "".join(pieces)

    def clone(self):
        """A fork: the C session is copied (the filled KV cache, pending tokens
        and the sampler's random state), nothing is run again."""
        other = object.__new__(type(self))
        other.engine, other.templates, other.lora = self.engine, self.templates, self.lora
        other.sampler = Sampler(self.sampler.top_k, self.sampler.top_p, self.sampler.temperature,
                                self.sampler.seed)
        other._native, other._params = self._native, self._params
        other.last_stats = GenerationStats()

        other._open(lambda: clone_c_session(self.handle))
        other._pushed = (self._pushed[0] if self._pushed[0] is self.sampler else None, self._pushed[1])
        other.tokens, other.pending = list(self.tokens), list(self.pending)
        other.in_user_turn, other.turns, other.formatted = self.in_user_turn, self.turns, self.formatted
        return other


def _release_all(memory, held) -> None:
    for what, n in held:
        memory.release(what, n)


class _CancelWatcher:
    """Forwards a threading.Event to plm_session_cancel while C runs, so a cancel
    lands between decode steps even when no token is being delivered."""

    def __init__(self, handle, event: threading.Event | None):
        self.handle, self.event = handle, event
        self._lock = threading.Lock()
        self._done = False

    def _run(self):
        lib = _lib()[1]
        while True:
            fired = self.event.wait(0.005)
            with self._lock:  # never touches the session once the generation has returned
                if self._done:
                    return
                if fired:
                    lib.plm_session_cancel(self.handle)
                    return

    def __enter__(self):
        if self.event is not None:
            threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._done = True
        return False

