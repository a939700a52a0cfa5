"""The native backend: libpocketlm's kernels through cffi (ABI mode).

The module that loads ``ffi`` / ``lib`` (engine/native.py borrows them
for the C engine). Its C declarations are read
from pocketlm.h itself (the PLM_CDEF_BEGIN..END section), so they cannot
drift from the library; a status other than PLM_OK becomes a ValueError.
Importing it raises NativeUnavailable, with the reason, when the library
cannot be found or loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..model.quant import F16, F32, QuantType
from . import _checks

name = "native"
_F = np.float32

_PKG = Path(__file__).resolve().parent.parent  # python/pocketlm
_REPO = _PKG.parent.parent


class NativeUnavailable(ImportError):
    """libpocketlm could not be loaded; the message says why and how to build it."""


def _find(filename: str, candidates: list[Path]) -> Path | None:
    for c in candidates:
        if (c / filename).is_file():
            return c / filename
    return None


def header_path() -> Path | None:
    # a library named by POCKETLM_LIB is a build of this source tree: its declarations are the tree's
    # header, not the copy installed beside the package's own library
    if os.environ.get("POCKETLM_LIB"):
        return _find("pocketlm.h", [_REPO / "native" / "include", _PKG / "_lib"])
    return _find("pocketlm.h", [_PKG / "_lib", _REPO / "native" / "include"])


def library_path() -> Path | None:
    env = os.environ.get("POCKETLM_LIB")
    if env:
        return Path(env)
    return _find("libpocketlm.so", [_PKG / "_lib", _REPO / "build" / "native"])


def cdef_source(header: Path) -> str:
    text = header.read_text()
    try:
        body = text.split("/* PLM_CDEF_BEGIN */", 1)[1].split("/* PLM_CDEF_END */", 1)[0]
    except IndexError:
        raise NativeUnavailable(f"{header} has no PLM_CDEF_BEGIN/END section") from None
    return body


def _load():
    try:
        import cffi
    except ImportError as e:  # pragma: no cover - cffi is a dependency
        raise NativeUnavailable(f"cffi is not installed ({e})") from e
    header, lib_path = header_path(), library_path()
    hint = "build it with `pip install -e .` (needs gcc and cmake) or point POCKETLM_LIB at libpocketlm.so"
    if header is None:
        raise NativeUnavailable(f"pocketlm.h not found next to the package; {hint}")
    if lib_path is None or not lib_path.is_file():
        raise NativeUnavailable(f"libpocketlm.so not found ({lib_path or 'no candidate path'}); {hint}")
    ffi = cffi.FFI()
    ffi.cdef(cdef_source(header))
    try:
        lib = ffi.dlopen(str(lib_path))
    except OSError as e:
        raise NativeUnavailable(f"cannot load {lib_path}: {e}; {hint}") from e
    return ffi, lib, lib_path


ffi, lib, LIBRARY = _load()


def _ptr(a: np.ndarray, ctype: str = "float *"):
    return ffi.cast(ctype, ffi.from_buffer(a)) if a.size else ffi.NULL


def _call(status: int, what: str) -> None:
    if status != lib.PLM_OK:
        raise ValueError(f"{what}: {ffi.string(lib.plm_status_string(status)).decode()}")


def cpu_features() -> dict[str, bool]:
    f = lib.plm_cpu_features()
    return {"avx2": bool(f & lib.PLM_CPU_AVX2), "neon": bool(f & lib.PLM_CPU_NEON),
            "avx512vnni": bool(f & lib.PLM_CPU_AVX512VNNI), "amx": bool(f & lib.PLM_CPU_AMX)}


def set_amx(enable: bool) -> bool:
    """Whether the prefill GEMM uses AMX's tiles where the OS grants them (the default; the AVX512-VNNI
    tile, which gives the same floats, otherwise); returns the previous setting."""
    return bool(lib.plm_set_amx(1 if enable else 0))


def set_simd(enable: bool | int) -> int:
    """False (0) forces the scalar reference twins of the SIMD kernels, 1 AVX2 (or NEON)
    without its extensions, True (2) everything the CPU has; returns the previous level."""
    level = 2 if enable is True else 0 if enable is False else int(enable)
    return lib.plm_set_simd(level)


# ---- quantization ------------------------------------------------------------


def _to_storage(raw: np.ndarray, qt: QuantType, rows: int, k: int) -> np.ndarray:
    if qt is F32:
        return raw.view(_F).reshape(rows, k)
    if qt is F16:
        return raw.view(np.float16).reshape(rows, k)
    return raw.reshape(rows, qt.row_bytes(k))


def quantize(x, qtype) -> np.ndarray:
    qt, x = _checks.quantize_args(x, qtype)
    k = x.shape[-1]
    rows = x.size // k if k else (x.shape[0] if x.ndim == 2 else 1)
    out = np.empty(rows * qt.row_bytes(k), dtype=np.uint8)
    _call(lib.plm_quantize(qt.id, _ptr(x), _ptr(out, "void *"), rows, k), "quantize")
    out = _to_storage(out, qt, rows, k)
    return out.reshape(*x.shape[:-1], out.shape[-1])


def dequantize(q, qtype, k: int | None = None) -> np.ndarray:
    qt, q2, n, k, squeeze = _checks.dequantize_args(q, qtype, k)
    out = np.empty((n, k), dtype=_F)
    _call(lib.plm_dequantize(qt.id, _ptr(q2, "void *"), _ptr(out), n, k), "dequantize")
    return out[0] if squeeze else out


def get_rows(w, qtype, ids, k: int | None = None) -> np.ndarray:
    qt, w, n, k = _checks.weight(w, qtype, k)
    ids = _checks.ids(ids, n)
    out = np.empty((ids.size, k), dtype=_F)
    _call(lib.plm_get_rows(qt.id, _ptr(w, "void *"), n, k, _ptr(ids, "int32_t *"), ids.size, _ptr(out)), "get_rows")
    return out


# ---- products ------------------------------------------------------------------


def matmul(x, w, qtype, n_threads=None) -> np.ndarray:
    qt, x, w, m, n, k, squeeze = _checks.matmul_args(x, w, qtype)
    nt = _checks.threads(n_threads)
    y = np.empty((m, n), dtype=_F)
    _call(lib.plm_matmul(qt.id, _ptr(w, "void *"), _ptr(x), _ptr(y), m, n, k, nt), "matmul")
    return y[0] if squeeze else y


# ---- norms, rope, elementwise ---------------------------------------------------


def _rows(x: np.ndarray) -> tuple[int, int]:
    n = x.shape[-1] if x.ndim else 1
    return (x.size // n if n else 0), n


def rms_norm(x, w, eps: float, w_offset: float = 0.0) -> np.ndarray:
    x, w, _ = _checks.norm_args(x, w, None, "rms_norm")
    y = np.empty_like(x)
    rows, n = _rows(x)
    _call(lib.plm_rms_norm(_ptr(x), _ptr(w) if w is not None else ffi.NULL, _ptr(y), rows, n, eps, w_offset),
          "rms_norm")
    return y


def layer_norm(x, w, b, eps: float) -> np.ndarray:
    x, w, b = _checks.norm_args(x, w, b, "layer_norm")
    y = np.empty_like(x)
    rows, n = _rows(x)
    _call(lib.plm_layer_norm(_ptr(x), _ptr(w) if w is not None else ffi.NULL,
                             _ptr(b) if b is not None else ffi.NULL, _ptr(y), rows, n, eps), "layer_norm")
    return y


def rope(x: np.ndarray, positions, theta: float, rot_dim: int | None = None, mode: str = "neox",
         freq_scale: float = 1.0, freq_factors=None) -> np.ndarray:
    pos, rot_dim, ff = _checks.rope_args(x, positions, theta, rot_dim, mode, freq_factors)
    n_tokens, n_heads, head_dim = x.shape
    _call(lib.plm_rope(_ptr(x), n_tokens, n_heads, head_dim, rot_dim, _ptr(pos, "int32_t *"), theta, freq_scale,
                       _ptr(ff) if ff is not None else ffi.NULL, _checks.ROPE_MODES[mode]), "rope")
    return x


def softmax(x) -> np.ndarray:
    x = _checks.f32(x, "x")
    y = np.empty_like(x)
    rows, n = _rows(x)
    _call(lib.plm_softmax(_ptr(x), _ptr(y), rows, n), "softmax")
    return y


def _unary(fn, x, *extra):
    x = _checks.f32(x, "x")
    y = np.empty_like(x)
    _call(fn(_ptr(x), _ptr(y), x.size, *extra), "activation")
    return y


def _binary(fn, a, b, names, *extra):
    a, b = _checks.f32(a, names[0]), _checks.f32(b, names[1])
    _checks.same_shape(a, b, f"{names[0]} and {names[1]}")
    y = np.empty_like(a)
    _call(fn(_ptr(a), _ptr(b), _ptr(y), a.size, *extra), "elementwise")
    return y


def silu(x) -> np.ndarray:
    return _unary(lib.plm_silu, x)


def gelu(x, approximate: bool = True) -> np.ndarray:
    return _unary(lib.plm_gelu, x, 1 if approximate else 0)


def silu_mul(gate, up) -> np.ndarray:
    return _binary(lib.plm_silu_mul, gate, up, ("gate", "up"))


def gelu_mul(gate, up, approximate: bool = True) -> np.ndarray:
    return _binary(lib.plm_gelu_mul, gate, up, ("gate", "up"), 1 if approximate else 0)


def add(a, b) -> np.ndarray:
    return _binary(lib.plm_add, a, b, ("a", "b"))


# ---- attention ---------------------------------------------------------------------


def attention(q, k_cache, v_cache, n_kv: int, q_pos0: int, scale: float, softcap: float = 0.0,
              window: int = 0, alibi_slopes=None, n_threads=None) -> np.ndarray:
    q, k_cache, v_cache, alibi = _checks.attention_args(q, k_cache, v_cache, n_kv, q_pos0, window, alibi_slopes)
    nt = _checks.threads(n_threads)
    n_q, n_heads, head_dim = q.shape
    out = np.empty_like(q)
    _call(lib.plm_attention(_ptr(q), _ptr(k_cache), _ptr(v_cache), _ptr(out), n_q, n_kv, q_pos0, n_heads,
                            k_cache.shape[1], head_dim, scale, softcap, window,
                            _ptr(alibi) if alibi is not None else ffi.NULL, nt), "attention")
    return out


# ---- threads and measurement ------------------------------------------------------------


def set_num_threads(n: int) -> int:
    return lib.plm_set_num_threads(_checks.threads(n))


def get_num_threads() -> int:
    n, cap = lib.plm_get_num_threads(), lib.plm_get_max_threads()
    return min(n, cap) if cap else n


def set_max_threads(n: int) -> int:
    return lib.plm_set_max_threads(max(0, int(n)))


def pool_stats() -> dict[str, int]:
    """Worker threads started so far and the most threads one region used since reset_pool_peak()."""
    return {"workers_started": lib.plm_pool_workers_started(), "peak_threads": lib.plm_pool_peak_threads()}


def reset_pool_peak() -> None:
    lib.plm_pool_reset_peak()


def bench_read(buf: np.ndarray, n_threads: int | None = None) -> float:
    """Streams buf once over n_threads threads (see tools/membw.py); returns a checksum."""
    return lib.plm_bench_read(_ptr(buf, "void *"), buf.nbytes, _checks.threads(n_threads))


# ---- GGUF files through the engine's C reader -------------------------------------------


def raise_status(status: int, err, what, exc=ValueError) -> None:
    """A non-zero status of a libpocketlm call with a char **error out-param
    as exc, carrying the malloc'd message (freed here), or `what` and the status."""
    if status != 0:
        msg = f"{what}: status {status}"
        if err[0] != ffi.NULL:
            msg = ffi.string(err[0]).decode("utf-8", "replace")
            lib.plm_free(err[0])
        raise exc(msg)


def _raise_gguf(path, status: int, err) -> None:
    """A non-zero status of the C reader as GGUFError."""
    from ..model.gguf_reader import GGUFError

    raise_status(status, err, path, GGUFError)


def _gguf_open(path, offset: int, length: int):
    out, err = ffi.new("plm_gguf **"), ffi.new("char **")
    _raise_gguf(path, lib.plm_gguf_open(str(path).encode(), offset, length, out, err), err)
    return ffi.gc(out[0], lib.plm_gguf_close)


def gguf_read(path, offset: int = 0, length: int = 0) -> tuple[dict, list[tuple[str, int, tuple, int, int]]]:
    """Parses a GGUF file with libpocketlm's reader (native/src/model/gguf.c):
    (metadata key -> value, [(tensor name, type, dims, offset from the data
    section, nbytes)]). Numeric arrays come back as lists, strings as str.
    A file the reader refuses raises GGUFError with the C reader's message."""
    g = _gguf_open(path, offset, length)
    s, n = ffi.new("const char **"), ffi.new("uint64_t *")
    fields = {}
    for i in range(lib.plm_gguf_n_kv(g)):
        key = ffi.string(lib.plm_gguf_key(g, i)).decode()
        vtype = lib.plm_gguf_kv_type(g, i)
        if vtype == 8:
            lib.plm_gguf_get_str(g, i, s, n)
            fields[key] = ffi.unpack(s[0], n[0]).decode()
        elif vtype == 9:
            et, cnt, data = ffi.new("int *"), ffi.new("uint64_t *"), ffi.new("void **")
            lib.plm_gguf_arr_info(g, i, et, cnt, data)
            if et[0] == 8:
                vals = []
                for j in range(cnt[0]):
                    lib.plm_gguf_arr_str(g, i, j, s, n)
                    vals.append(ffi.unpack(s[0], n[0]).decode())
                fields[key] = vals
            else:
                dt = np.dtype(_GGUF_DTYPES[et[0]])  # the Python reader's table, bool as a byte
                fields[key] = np.frombuffer(ffi.buffer(data[0], cnt[0] * dt.itemsize), dt).tolist()
        elif vtype in (6, 12):
            v = ffi.new("double *")
            lib.plm_gguf_get_float(g, i, v)
            fields[key] = v[0]
        else:
            v = ffi.new("int64_t *")
            _call(lib.plm_gguf_get_int(g, i, v), f"metadata {key}")
            fields[key] = bool(v[0]) if vtype == 7 else v[0]
    tensors = []
    name, ttype, nd = ffi.new("const char **"), ffi.new("int *"), ffi.new("int *")
    dims, data, nbytes = ffi.new("int64_t[4]"), ffi.new("const void **"), ffi.new("uint64_t *")
    base = None
    for i in range(lib.plm_gguf_n_tensors(g)):
        lib.plm_gguf_tensor_info(g, i, name, ttype, nd, dims, data, nbytes)
        addr = int(ffi.cast("uintptr_t", data[0]))
        base = addr if base is None else min(base, addr)
        tensors.append([ffi.string(name[0]).decode(), ttype[0], tuple(dims[d] for d in range(nd[0])), addr,
                        nbytes[0]])
    for t in tensors:  # offsets relative to the first tensor's data, as comparable numbers
        t[3] -= base
    return fields, [tuple(t) for t in tensors]


def _gguf_dtypes() -> dict[int, str]:
    from ..model.gguf_reader import _DTYPES, BOOL

    return {**_DTYPES, BOOL: "<u1"}


_GGUF_DTYPES = _gguf_dtypes()


# ---- the engine's sampler -------------------------------------------------------------------


class Sampler:
    """libpocketlm's sampler (native/src/engine/sampler.c): the same algorithm and
    random stream as pocketlm.sampling.Sampler, so a seed gives the same
    tokens in both engines."""

    def __init__(self, top_k: int = 40, top_p: float = 1.0, temperature: float = 0.8, seed: int = 0):
        self.top_k, self.top_p, self.temperature = int(top_k), float(top_p), float(temperature)
        self.rng = ffi.new("plm_rng *")
        lib.plm_rng_seed(self.rng, int(seed))
        self._token = ffi.new("int32_t *")

    def random(self) -> float:
        return lib.plm_rng_uniform(self.rng)

    def sample(self, logits: np.ndarray) -> int:
        x = np.ascontiguousarray(logits, dtype=np.float32).reshape(-1)
        _call(lib.plm_sample(_ptr(x), x.size, self.top_k, self.top_p, self.temperature, self.rng, self._token),
              "sample")
        return int(self._token[0])


_NORMS, _ACTS, _ROPE_MODES, _POSITIONS = ("rms", "layer"), ("silu", "gelu", "gelu_tanh"), ("neox", "gptj"), \
    ("rope", "learned", "alibi")


def gguf_model_config(path, offset: int = 0, length: int = 0) -> dict:
    """The C engine's reading of a GGUF file's model config
    (plm_gguf_model_config), as a dict with ModelConfig's field names and
    values; a refusal raises GGUFError with the C message."""
    g = _gguf_open(path, offset, length)
    c, err = ffi.new("plm_model_config *"), ffi.new("char **")
    _raise_gguf(path, lib.plm_gguf_model_config(g, c, err), err)
    return dict(
        arch=ffi.string(c.arch).decode(), vocab_size=c.vocab_size, hidden_size=c.hidden_size, n_layers=c.n_layers,
        n_heads=c.n_heads, n_kv_heads=c.n_kv_heads, head_dim=c.head_dim, intermediate_size=c.intermediate_size,
        max_position_embeddings=c.max_position_embeddings, norm_eps=c.norm_eps, norm=_NORMS[c.norm],
        norm_w_offset=c.norm_w_offset, act=_ACTS[c.act], gated_mlp=bool(c.gated_mlp), rope_theta=c.rope_theta,
        rot_dim=c.rot_dim, rope_mode=_ROPE_MODES[c.rope_mode], rope_freq_scale=c.rope_freq_scale,
        rope_freq_factors=tuple(c.rope_freq_factors[i] for i in range(c.n_rope_freq_factors)),
        rope_local_theta=c.rope_local_theta, rope_local_freq_scale=c.rope_local_freq_scale,
        rope_freq_factors_long=tuple(c.rope_freq_factors_long[i] for i in range(c.n_rope_freq_factors_long)),
        rope_long_after=c.rope_long_after, rope_attn_factor=c.rope_attn_factor, qk_norm=bool(c.qk_norm),
        qkv_bias=bool(c.qkv_bias), o_bias=bool(c.o_bias), mlp_bias=bool(c.mlp_bias),
        tie_embeddings=bool(c.tie_embeddings), embed_scale=c.embed_scale, query_scale=c.query_scale,
        attn_softcap=c.attn_softcap, final_softcap=c.final_softcap, sliding_window=c.sliding_window,
        sliding_window_layers=tuple(i for i in range(min(c.n_layers, 1024)) if c.sliding_window_layer[i]),
        post_norms=bool(c.post_norms), parallel_residual=bool(c.parallel_residual), positions=_POSITIONS[c.positions],
        output_bias=bool(c.output_bias), bos_token_id=None if c.bos_token_id < 0 else c.bos_token_id,
        eos_token_ids=tuple(c.eos_token_ids[i] for i in range(c.n_eos)))


# ---- .task bundles through the engine's C reader ------------------------------------------------

_ROLE_KEYS = ("user_role_token", "system_role_token", "model_role_token", "end_role_token")


def _s(v) -> str:
    return ffi.unpack(v.ptr, v.len).decode("utf-8") if v.len else ""


def llm_params_dict(p) -> dict:
    """A plm_llm_params as genai.llm_params.parse_metadata's dict."""
    meta: dict = {"stop_tokens": [_s(p.stop_tokens[i]) for i in range(p.n_stop_tokens)]}
    if p.has_start_token:
        meta["start_token"] = _s(p.start_token)
    elif p.has_start_token_id:
        meta["start_token_id"] = p.start_token_id
    for key, value in (("system_prompt", p.system_prompt), ("prompt_prefix", p.prompt_prefix),
                       ("prompt_suffix", p.prompt_suffix)):
        if value.len:
            meta[key] = _s(value)
    if p.bytes_to_unicode:
        meta["enable_bytes_to_unicode_mapping"] = True
    for i, key in enumerate(_ROLE_KEYS):
        if p.has_role_token[i]:
            meta[key] = _s(p.role_tokens[i])
    if p.vocab_size:
        meta["vocab_size"] = p.vocab_size
    return meta


def llm_params_parse(raw: bytes) -> dict | None:
    """LlmParameters bytes through the C wire reader: the dict, or None when refused."""
    p = ffi.new("plm_llm_params *")
    buf = ffi.from_buffer(raw)
    if lib.plm_llm_params_parse(buf, len(raw), p) != 0 or p.unknown_normalization:
        return None
    return llm_params_dict(p)


def task_read(path) -> tuple[list[tuple[str, int, int, bool]], dict | None]:
    """A .task through libpocketlm's reader (native/src/model/task_bundle.c): its
    entries as (name, data offset, size, stored) and its METADATA as
    parse_metadata's dict (None without one). A refusal raises ModelFileError
    with the C message."""
    from ..errors import ModelFileError

    out, err = ffi.new("plm_task **"), ffi.new("char **")
    raise_status(lib.plm_task_open(str(path).encode(), out, err), err, path, ModelFileError)
    t = ffi.gc(out[0], lib.plm_task_close)
    name, off, size, stored = ffi.new("const char **"), ffi.new("uint64_t *"), ffi.new("uint64_t *"), ffi.new("int *")
    entries = []
    for i in range(lib.plm_task_n_entries(t)):
        lib.plm_task_entry(t, i, name, off, size, stored)
        entries.append((ffi.string(name[0]).decode("utf-8", "replace"), off[0], size[0], bool(stored[0])))
    p = ffi.new("plm_llm_params *")
    st = lib.plm_task_metadata(t, p, err)
    if st == lib.PLM_ERR_NOT_FOUND:
        return entries, None
    raise_status(st, err, path, ModelFileError)
    return entries, llm_params_dict(p)


def _litertlm_token(m, t) -> tuple[str | None, list[int] | None]:
    if t.kind == lib.PLM_LITERTLM_TOKEN_TEXT:
        return _s(t.text), None
    if t.kind == lib.PLM_LITERTLM_TOKEN_IDS:
        return None, [int(m.token_ids[t.first_id + j]) for j in range(t.n_ids)]
    return None, None


def litertlm_metadata_dict(m) -> dict:
    """A plm_litertlm_llm_metadata in model/litertlm_file.llm_metadata_dict's names, for the fields C reads
    (llm_model_type as the field number of LlmModelType's member: llm_model_type_field)."""
    meta: dict = {}
    text, ids = _litertlm_token(m, m.start_token)
    if text is not None:
        meta["start_token"] = text
    elif ids is not None:
        meta["start_token_ids"] = ids
        if len(ids) == 1:
            meta["start_token_id"] = ids[0]
    stops = [_litertlm_token(m, m.stop_tokens[i]) for i in range(m.n_stop_tokens)]
    if any(t is not None for t, _ in stops):
        meta["stop_tokens"] = [t for t, _ in stops if t is not None]
    if any(i is not None for _, i in stops):
        meta["stop_token_ids"] = [i for _, i in stops if i is not None]
    for role in ("user", "model", "system"):
        if getattr(m, f"has_{role}_affixes"):
            meta[f"{role}_prefix"], meta[f"{role}_suffix"] = _s(getattr(m, f"{role}_prefix")), \
                _s(getattr(m, f"{role}_suffix"))
    if m.has_jinja_template:
        meta["chat_template"] = _s(m.jinja_template)
    if m.max_num_tokens:
        meta["max_num_tokens"] = int(m.max_num_tokens)
    if m.llm_model_type:
        meta["llm_model_type_field"] = int(m.llm_model_type)
    return meta


def litertlm_read(path) -> dict:
    """A .litertlm through libpocketlm's reader (native/src/model/litertlm.c):
    {"version": (major, minor, patch), "sections": [(data_type, offset, size,
    model_type or None)], "llm_metadata": litertlm_metadata_dict (None without
    the section), "tokenizer": ("sentencepiece" or "tokenizer.json", bytes) or
    None}. A refusal, the metadata's and the tokenizer's too, raises
    ModelFileError with the C message."""
    from ..errors import ModelFileError

    out, err = ffi.new("plm_litertlm **"), ffi.new("char **")
    raise_status(lib.plm_litertlm_open(str(path).encode(), out, err), err, path, ModelFileError)
    f = ffi.gc(out[0], lib.plm_litertlm_close)
    version = ffi.new("uint32_t[3]")
    lib.plm_litertlm_version(f, version)
    dtype, off, size, model_type = ffi.new("int *"), ffi.new("uint64_t *"), ffi.new("uint64_t *"), \
        ffi.new("const char **")
    sections = []
    for i in range(lib.plm_litertlm_n_sections(f)):
        lib.plm_litertlm_section(f, i, dtype, off, size, model_type)
        mt = ffi.string(model_type[0]).decode("utf-8") if model_type[0] != ffi.NULL else None
        sections.append((int(dtype[0]), int(off[0]), int(size[0]), mt))
    m = ffi.new("plm_litertlm_llm_metadata *")
    st = lib.plm_litertlm_metadata(f, m, err)
    if st != lib.PLM_ERR_NOT_FOUND:
        raise_status(st, err, path, ModelFileError)
    meta = litertlm_metadata_dict(m) if st == lib.PLM_OK else None
    kind, data = ffi.new("int *"), ffi.new("const void **")
    st = lib.plm_litertlm_tokenizer(f, kind, data, size, err)
    tokenizer = None
    if st != lib.PLM_ERR_NOT_FOUND:
        raise_status(st, err, path, ModelFileError)
        tokenizer = ("sentencepiece" if kind[0] == lib.PLM_LITERTLM_TOKENIZER_SENTENCEPIECE else "tokenizer.json",
                     ffi.unpack(ffi.cast("const char *", data[0]), size[0]))
    return {"version": tuple(int(v) for v in version), "sections": sections, "llm_metadata": meta,
            "tokenizer": tokenizer}


def litertlm_has_zlib() -> bool:
    """Whether this libpocketlm inflates HF_Tokenizer_Zlib sections (it was built with zlib)."""
    return bool(lib.plm_litertlm_has_zlib())


# ---- tokenizers in C -------------------------------------------------------------------------


class CTokenizer:
    """libpocketlm's tokenizer (native/src/text/tokenizer.c) with the interface of
    pocketlm.tokenizer.Tokenizer: the same ids and text as the Python one for
    the same file. Made from a GGUF (path, offset, length) or from a .task's
    TOKENIZER_MODEL bytes."""

    def __init__(self, handle):
        self._t = ffi.gc(handle, lib.plm_tokenizer_free)
        self.bos_id = None if lib.plm_tokenizer_bos_id(self._t) < 0 else int(lib.plm_tokenizer_bos_id(self._t))
        ids = ffi.new("const int32_t **")
        n = lib.plm_tokenizer_eos_ids(self._t, ids)
        self.eos_ids = tuple(int(ids[0][i]) for i in range(n))
        self.add_bos = bool(lib.plm_tokenizer_add_bos(self._t))
        tpl = lib.plm_tokenizer_chat_template(self._t)
        self.chat_template = ffi.string(tpl).decode("utf-8") if tpl != ffi.NULL else None

    @classmethod
    def from_gguf(cls, path, offset: int = 0, length: int = 0) -> CTokenizer:
        g = _gguf_open(path, offset, length)
        out, err = ffi.new("plm_tokenizer **"), ffi.new("char **")
        raise_status(lib.plm_tokenizer_from_gguf(g, str(path).encode(), out, err), err, path)
        return cls(out[0])

    @classmethod
    def from_bytes(cls, data: bytes, bos_id=None, eos_ids=(), what: str = "tokenizer") -> CTokenizer:
        out, err = ffi.new("plm_tokenizer **"), ffi.new("char **")
        eos = ffi.new("int64_t[]", list(eos_ids) or [0])
        raise_status(lib.plm_tokenizer_from_bytes(data, len(data), -1 if bos_id is None else bos_id, eos,
                                                  len(eos_ids), what.encode(), out, err), err, what)
        return cls(out[0])

    @property
    def vocab_size(self) -> int:
        return int(lib.plm_tokenizer_vocab_size(self._t))

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        b = text.encode("utf-8")
        n, err = ffi.new("int64_t *"), ffi.new("char **")
        cap = len(b) + 8
        buf = ffi.new("int32_t[]", cap)
        raise_status(lib.plm_tokenizer_encode(self._t, b, len(b), add_bos, buf, cap, n, err), err, "encode")
        if n[0] > cap:
            buf = ffi.new("int32_t[]", n[0])
            raise_status(lib.plm_tokenizer_encode(self._t, b, len(b), add_bos, buf, n[0], n, err), err, "encode")
        return list(ffi.unpack(buf, n[0]))

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        arr = ffi.new("int32_t[]", ids or [0])
        n, err = ffi.new("uint64_t *"), ffi.new("char **")
        raise_status(lib.plm_tokenizer_decode(self._t, arr, len(ids), ffi.NULL, 0, n, err), err, "decode")
        buf = ffi.new("char[]", n[0] + 1)
        raise_status(lib.plm_tokenizer_decode(self._t, arr, len(ids), buf, n[0], n, err), err, "decode")
        return ffi.unpack(buf, n[0]).decode("utf-8")

    def special_id(self, text: str) -> int | None:
        b = text.encode("utf-8")
        i = lib.plm_tokenizer_special_id(self._t, b, len(b))
        return None if i < 0 else int(i)


_TEMPLATE_FIELDS = ("user_prefix", "user_suffix", "model_prefix", "model_suffix", "system_prefix", "system_suffix",
                    "preamble")


def chat_template_family(template: str, bos_text: str, eos_text: str, strip_bos: bool):
    """(family name, dict of the turn-template fields) when libpocketlm
    recognises the chat template's family (plm_chat_template_detect), else None."""
    out = ffi.new("plm_turn_templates *")
    name = lib.plm_chat_template_detect(template.encode("utf-8"), bos_text.encode("utf-8"),
                                        eos_text.encode("utf-8"), int(strip_bos), out)
    if name == ffi.NULL:
        return None
    return ffi.string(name).decode(), {f: ffi.string(getattr(out, f)).decode("utf-8") for f in _TEMPLATE_FIELDS}


def chat_template_render(fields: dict, messages, add_generation_prompt: bool) -> str:
    """The text libpocketlm renders messages ([{"role", "content"}]) to with
    the turn-template fields (plm_chat_template_render); ValueError names a
    conversation it refuses."""
    t = ffi.new("plm_turn_templates *")
    for f in _TEMPLATE_FIELDS:
        value = fields.get(f, "").encode("utf-8")
        if len(value) >= ffi.sizeof(getattr(t, f)):
            raise ValueError(f"{f} is longer than {ffi.sizeof(getattr(t, f)) - 1} bytes")
        ffi.memmove(getattr(t, f), value, len(value))
    keep = [(ffi.new("char[]", m["role"].encode("utf-8")), ffi.new("char[]", m["content"].encode("utf-8")))
            for m in messages]
    arr = ffi.new("plm_chat_message[]", max(len(keep), 1))
    for i, (role, content) in enumerate(keep):
        arr[i].role, arr[i].content = role, content
    out, err = ffi.new("char **"), ffi.new("char **")
    raise_status(lib.plm_chat_template_render(t, arr, len(keep), int(add_generation_prompt), out, err), err,
                 "chat_template_render")
    try:
        return ffi.string(out[0]).decode("utf-8")
    finally:
        lib.plm_free(out[0])


# ---- LiteRT models (TFLite graphs on LiteRT's kernels, native/src/litert/) ------------------------


class LiteRTUnavailable(RuntimeError):
    """LiteRT's runtime library (liblitert-lm.so) cannot be found or loaded; the message says how to get it."""


_LITERT_HINT = ("install it with `pip install pocketlm[litert]` (the litert-lm-api package), or set "
                "POCKETLM_LITERT_LIB to a liblitert-lm.so")


def litert_runtime_path() -> Path | None:
    """liblitert-lm.so of the installed litert_lm package (litert-lm-api), found without importing it; or None."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("litert_lm")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for name in ("liblitert-lm.so", "liblitert-lm.dylib"):
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    return None


def litert_library() -> Path | None:
    """The liblitert-lm.so libpocketlm has loaded, or None."""
    p = lib.plm_litert_library()
    return None if p == ffi.NULL else Path(ffi.string(p).decode())


def use_litert(path=None) -> Path:
    """Loads LiteRT's runtime into libpocketlm (plm_litert_set_library) once: path, else
    $POCKETLM_LITERT_LIB, else the litert_lm package's. Returns the loaded library's path."""
    loaded = litert_library()
    if loaded is not None and path is None:
        return loaded
    path = path or os.environ.get("POCKETLM_LITERT_LIB") or litert_runtime_path()
    if path is None:
        raise LiteRTUnavailable(f"LiteRT models run on LiteRT-LM's runtime library, which is not installed: "
                                f"{_LITERT_HINT}")
    err = ffi.new("char **")
    raise_status(lib.plm_litert_set_library(str(path).encode(), err), err, str(path), LiteRTUnavailable)
    return Path(path)


def open_litert_model(path, offset: int = 0, size: int = 0):
    """plm_model_open_litert after use_litert(): a raw plm_model handle the caller owns
    (engine/native.py's NativeModel takes it and frees it). A file the executor refuses
    raises ModelFileError with the C message."""
    from ..errors import ModelFileError

    use_litert()
    out, err = ffi.new("plm_model **"), ffi.new("char **")
    raise_status(lib.plm_model_open_litert(str(path).encode(), offset, size, out, err), err, str(path), ModelFileError)
    return out[0]


def model_is_litert(handle) -> bool:
    return bool(lib.plm_model_is_litert(handle))


def litert_prefill_lengths(handle) -> list[int]:
    """The lengths T of a LiteRT model's prefill_T signatures, ascending."""
    n = lib.plm_model_litert_prefill_lengths(handle, ffi.NULL, 0)
    if n < 0:
        raise ValueError("not a LiteRT model")
    out = ffi.new("int64_t[]", max(n, 1))
    lib.plm_model_litert_prefill_lengths(handle, out, n)
    return [int(out[i]) for i in range(n)]
