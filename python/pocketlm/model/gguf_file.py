"""pocketlm's model file: one GGUF file holding canonical tensors, the whole
ModelConfig and the tokenizer, so the file alone runs the model.

The file is laid out as llama.cpp lays out the same architecture (its keys,
tensor names and tensor transforms: Llama's Q/K rows permuted to
adjacent-pair rotary, Gemma's norm weights stored as 1 + w, GPT-2's and
Falcon's q/k/v fused into attn_qkv), so files written here run in llama.cpp
and files llama.cpp wrote run here; ``pocketlm.config`` adds the whole
ModelConfig as JSON (docs/model-file.md lists every key). Loading undoes the
layout with views, not copies: a fused attn_qkv becomes three row slices of
the memory-mapped tensor.
Writes are atomic: a temporary file renamed into place.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from pathlib import Path

import gguf
import numpy as np

from .._atomic import atomic_output
from ..errors import ModelFileError, reading
from .config import ModelConfig
from .gguf_reader import GGUFFile
from .quant import quant_type

# pocketlm architecture -> llama.cpp's general.architecture
GGUF_ARCH = {"llama": "llama", "mistral": "llama", "gemma": "gemma", "gemma2": "gemma2", "phi": "phi2",
             "falcon": "falcon", "stablelm": "stablelm", "gpt2": "gpt2", "gemma3": "gemma3", "qwen2": "qwen2",
             "qwen3": "qwen3", "phi3": "phi3"}
# llama.cpp's general.architecture -> pocketlm's architecture, for files without pocketlm.config
LLAMA_CPP_ARCH = {cpp: ours for ours, cpp in GGUF_ARCH.items() if ours != "mistral"}
# token types, as llama.cpp numbers them
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE = 1, 2, 3, 4, 6


def permute_for_llama_cpp(w: np.ndarray, n_heads: int, head_dim: int) -> np.ndarray:
    """Rows of a Q or K projection from Hugging Face's rotate-half order to
    llama.cpp's adjacent-pair order (what its converter does)."""
    return np.ascontiguousarray(
        w.reshape(n_heads, 2, head_dim // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


# architectures whose llama.cpp graph takes q/k/v fused into one attn_qkv matrix
FUSED_QKV = ("gpt2", "falcon", "phi3")
# architectures whose llama.cpp graph takes the gated MLP's gate and up fused into ffn_up ([gate; up] rows)
FUSED_GATE_UP = ("phi3",)
ROPE_FREQS = "rope_freqs.weight"  # llama.cpp's per-frequency divisors: how llama3 rope scaling is stored
ROPE_LONG, ROPE_SHORT = "rope_factors_long.weight", "rope_factors_short.weight"  # longrope's, as llama.cpp's Phi-3


def llama_cpp_gemma3_query_scale(cfg: ModelConfig) -> float:
    """The query scale llama.cpp's gemma3 graph uses (it reads no key for it):
    1/sqrt(head_dim), 1/sqrt(hidden / heads) for the 62-layer 27B."""
    return (cfg.hidden_size / cfg.n_heads) ** -0.5 if cfg.n_layers == 62 else cfg.head_dim ** -0.5


def to_llama_cpp_layout(cfg: ModelConfig, tensors: dict[str, np.ndarray]) -> ModelConfig:
    """Rewrites canonical float tensors (in place) into llama.cpp's layout for
    the architecture and returns the config that describes them."""
    if cfg.arch in ("llama", "mistral"):  # rotate-half -> adjacent pairs, as llama.cpp's converter does
        for name in list(tensors):
            if ".attn_q." in name:
                tensors[name] = permute_for_llama_cpp(np.asarray(tensors[name], np.float32), cfg.n_heads, cfg.head_dim)
            elif ".attn_k." in name:
                tensors[name] = permute_for_llama_cpp(np.asarray(tensors[name], np.float32), cfg.n_kv_heads,
                                                      cfg.head_dim)
        cfg = dataclasses.replace(cfg, rope_mode="gptj")
    if cfg.norm_w_offset:  # Gemma scales by (1 + w): llama.cpp stores 1 + w and scales by it
        for name in [n for n in tensors if n.endswith("norm.weight")]:
            tensors[name] = np.asarray(tensors[name], np.float32) + np.float32(cfg.norm_w_offset)
        cfg = dataclasses.replace(cfg, norm_w_offset=0.0)
    if cfg.arch == "gemma3" and cfg.rope_local_freq_scale != 1.0:
        raise ValueError(f"linear rope scaling {1 / cfg.rope_local_freq_scale:g} on Gemma 3's sliding-attention layers "
                         "has no llama.cpp key (its gemma3 rotates them unscaled): not supported in a model file")
    if cfg.arch == "gemma3" and cfg.query_scale != llama_cpp_gemma3_query_scale(cfg):
        # llama.cpp's gemma3 fixes the query scale; RoPE and the scores are linear in q, so another
        # query_pre_attn_scalar goes into the q norm's weights, exactly
        ratio = np.float32(cfg.query_scale / llama_cpp_gemma3_query_scale(cfg))
        for name in [n for n in tensors if n.endswith(".attn_q_norm.weight")]:
            tensors[name] = np.asarray(tensors[name], np.float32) * ratio
        cfg = dataclasses.replace(cfg, query_scale=llama_cpp_gemma3_query_scale(cfg))
    if cfg.arch in FUSED_GATE_UP:
        for i in range(cfg.n_layers):
            gate, up = f"blk.{i}.ffn_gate.weight", f"blk.{i}.ffn_up.weight"
            if gate in tensors and up in tensors:
                tensors[up] = np.concatenate([np.asarray(tensors.pop(gate)), np.asarray(tensors[up])])
    if cfg.arch in FUSED_QKV:
        for i in range(cfg.n_layers):
            for wb in ("weight", "bias"):
                parts = [f"blk.{i}.attn_{p}.{wb}" for p in "qkv"]
                if all(p in tensors for p in parts):
                    tensors[f"blk.{i}.attn_qkv.{wb}"] = np.concatenate([np.asarray(tensors.pop(p)) for p in parts])
    if cfg.arch == "falcon" and cfg.parallel_residual and "blk.0.ffn_norm.weight" in tensors:
        # Falcon-40B-style layers: llama.cpp's attn_norm feeds the MLP, its attn_norm_2 the attention
        for name in [n for n in tensors if ".attn_norm." in n]:
            tensors[name.replace(".attn_norm.", ".attn_norm_2.")] = tensors.pop(name)
        for name in [n for n in tensors if ".ffn_norm." in n]:
            tensors[name.replace(".ffn_norm.", ".attn_norm.")] = tensors.pop(name)
    return cfg


def from_llama_cpp_layout(cfg: ModelConfig, weights: dict) -> None:
    """Canonical names over a file's tensors, in place and without copies:
    attn_qkv split into row views; in Falcon-40B-style layers, llama.cpp's
    attn_norm_2 (attention input) is attn_norm and its attn_norm (MLP input) ffn_norm."""
    from .forward import Weight

    for name in [n for n in weights if ".attn_qkv." in n]:
        fused = weights.pop(name)
        data = fused.data if isinstance(fused, Weight) else fused
        bounds = [0, cfg.q_dim, cfg.q_dim + cfg.kv_dim, cfg.q_dim + 2 * cfg.kv_dim]
        if data.shape[0] != bounds[-1]:
            raise ValueError(f"tensor {name} has {data.shape[0]} rows, but the config implies {bounds[-1]} "
                             f"(q {cfg.q_dim} + k {cfg.kv_dim} + v {cfg.kv_dim})")
        for p, lo, hi in zip("qkv", bounds, bounds[1:]):
            part = name.replace(".attn_qkv.", f".attn_{p}.")
            weights[part] = Weight(data[lo:hi], fused.qtype) if isinstance(fused, Weight) else data[lo:hi]
    if cfg.arch in FUSED_GATE_UP and cfg.gated_mlp:
        for name in [n for n in weights if n.endswith(".ffn_up.weight") and n.replace("_up.", "_gate.") not in weights]:
            fused = weights[name]
            data = fused.data if isinstance(fused, Weight) else fused
            f = cfg.intermediate_size
            if data.shape[0] != 2 * f:
                raise ValueError(f"tensor {name} has {data.shape[0]} rows, but the config implies {2 * f} "
                                 f"(gate {f} + up {f}, fused)")
            for part, rows in (("ffn_gate", data[:f]), ("ffn_up", data[f:])):
                weights[name.replace("ffn_up", part)] = Weight(rows, fused.qtype) if isinstance(fused, Weight) else rows
    if any(".attn_norm_2." in n for n in weights):
        for name in [n for n in weights if ".attn_norm." in n]:
            weights[name.replace(".attn_norm.", ".ffn_norm.")] = weights.pop(name)
        for name in [n for n in weights if ".attn_norm_2." in n]:
            weights[name.replace(".attn_norm_2.", ".attn_norm.")] = weights.pop(name)


def _cfg_json(cfg: ModelConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg))


def config_from_json(text: str) -> ModelConfig:
    d = json.loads(text)
    d["sliding_window_layers"] = tuple(d.get("sliding_window_layers", ()))
    d["eos_token_ids"] = tuple(d.get("eos_token_ids", ()))
    d["rope_freq_factors"] = tuple(d.get("rope_freq_factors", ()))
    d["rope_freq_factors_long"] = tuple(d.get("rope_freq_factors_long", ()))
    return ModelConfig(**d)


def write_gguf(path: str | Path, cfg: ModelConfig, tensors: dict[str, tuple[np.ndarray, str]],
               tokenizer: dict, extra: dict | None = None) -> Path:
    """tensors: canonical name -> (storage array, type name). tokenizer: see
    tokenizer_metadata(). Returns the path written."""
    path = Path(path)
    with atomic_output(path) as tmp:
        w = gguf.GGUFWriter(tmp, GGUF_ARCH[cfg.arch])
        w.add_name(extra.get("name", cfg.arch) if extra else cfg.arch)
        w.add_vocab_size(cfg.vocab_size)
        w.add_context_length(cfg.max_position_embeddings)
        w.add_embedding_length(cfg.hidden_size)
        w.add_block_count(cfg.n_layers)
        w.add_feed_forward_length(cfg.intermediate_size)
        w.add_head_count(cfg.n_heads)
        w.add_head_count_kv(cfg.n_kv_heads)
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
        if cfg.norm == "rms":
            w.add_layer_norm_rms_eps(cfg.norm_eps)
        else:
            w.add_layer_norm_eps(cfg.norm_eps)
        if cfg.rot_dim:
            w.add_rope_dimension_count(cfg.rot_dim)
            w.add_rope_freq_base(cfg.rope_theta)
            if cfg.rope_freq_scale != 1.0:
                w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
                w.add_rope_scaling_factor(1.0 / cfg.rope_freq_scale)
            if cfg.rope_freq_factors_long:  # longrope, as llama.cpp's converter writes Phi-3's
                tensors = {**tensors, ROPE_LONG: (np.asarray(cfg.rope_freq_factors_long, dtype=np.float32), "F32"),
                           ROPE_SHORT: (np.asarray(cfg.rope_freq_factors or [1.0] * (cfg.rot_dim // 2),
                                                   dtype=np.float32), "F32")}
                w.add_rope_scaling_orig_ctx_len(cfg.rope_long_after)
            elif cfg.rope_freq_factors:  # llama3 scaling, as llama.cpp's converter writes it
                tensors = {**tensors, ROPE_FREQS: (np.asarray(cfg.rope_freq_factors, dtype=np.float32), "F32")}
            if cfg.rope_attn_factor != 1.0:
                w.add_rope_scaling_attn_factors(cfg.rope_attn_factor)
            if cfg.rope_local_theta > 0:  # the sliding-window layers' base (llama.cpp's gemma3)
                w.add_rope_freq_base_swa(cfg.rope_local_theta)
        if cfg.sliding_window or cfg.arch == "phi3":  # llama.cpp's Phi-3 converter writes 0 for none
            w.add_sliding_window(cfg.sliding_window)
        if cfg.sliding_window and cfg.arch == "gemma3":  # which layers slide, one flag a layer
            w.add_sliding_window_pattern([i in cfg.sliding_window_layers for i in range(cfg.n_layers)])
        if cfg.attn_softcap:
            w.add_attn_logit_softcapping(cfg.attn_softcap)
        if cfg.final_softcap:
            w.add_final_logit_softcapping(cfg.final_softcap)
        w.add_string("pocketlm.config", _cfg_json(cfg))
        for key, value in (extra or {}).items():
            if key != "name":
                w.add_string(f"pocketlm.{key}", value if isinstance(value, str) else json.dumps(value))
        _write_tokenizer(w, tokenizer)
        for name, (arr, tname) in tensors.items():
            qt = quant_type(tname)
            w.add_tensor(name, np.ascontiguousarray(arr), raw_dtype=gguf.GGMLQuantizationType(qt.id))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file(progress=False)
        w.close()
    return path


def _write_tokenizer(w: gguf.GGUFWriter, tok: dict) -> None:
    w.add_tokenizer_model(tok["model"])
    w.add_token_list(tok["tokens"])
    w.add_token_types(tok["token_types"])
    if tok.get("scores") is not None:
        w.add_token_scores(tok["scores"])
    if tok.get("merges"):
        w.add_token_merges(tok["merges"])
    if tok.get("pre"):
        w.add_tokenizer_pre(tok["pre"])
    if tok.get("bos_id") is not None:
        w.add_bos_token_id(tok["bos_id"])
    w.add_add_bos_token(bool(tok.get("add_bos")))
    if tok.get("chat_template"):
        w.add_chat_template(tok["chat_template"])
    if tok.get("eos_ids"):
        w.add_eos_token_id(tok["eos_ids"][0])
        w.add_array("pocketlm.tokenizer.eos_token_ids", list(tok["eos_ids"]))
    if tok.get("pre_tokenizer") is not None:
        w.add_string("pocketlm.tokenizer.pre_tokenizer", json.dumps(tok["pre_tokenizer"]))
    if tok.get("normalizer") is not None:  # tokenizer.json's normalizer (Qwen2's NFC), which the ids depend on
        w.add_string("pocketlm.tokenizer.normalizer", json.dumps(tok["normalizer"]))
    if tok.get("ignore_merges"):
        w.add_bool("pocketlm.tokenizer.ignore_merges", True)
    if tok.get("sp_model") is not None:  # the SentencePiece model itself, base64, so it runs exactly as trained
        w.add_string("pocketlm.tokenizer.sp_model", base64.b64encode(tok["sp_model"]).decode("ascii"))
    if tok.get("add_space_prefix") is not None:
        w.add_add_space_prefix(bool(tok["add_space_prefix"]))
    if tok.get("huggingface_json") is not None:  # the exact tokenizer.json (GGUF's key for it), preferred on reading
        w.add_string("tokenizer.huggingface.json", tok["huggingface_json"])
    if tok.get("extra_special_tokens"):
        w.add_string("pocketlm.tokenizer.extra_special_tokens", json.dumps(list(tok["extra_special_tokens"])))


def tokenizer_metadata(tok) -> dict:
    """The GGUF tokenizer fields of a pocketlm Tokenizer."""
    from ..tokenizer import BPETokenizer, HFTokenizer, SentencePieceTokenizer

    if isinstance(tok, HFTokenizer):
        return _hf_tokenizer_metadata(tok)
    if isinstance(tok, BPETokenizer):
        n = tok.vocab_size
        tokens = [tok.id_to_token.get(i, f"[PAD{i}]") for i in range(n)]
        types = []
        for i in range(n):
            if i in tok.special_ids:
                types.append(CONTROL)
            elif i in tok.added_ids:
                types.append(USER_DEFINED)
            else:
                types.append(NORMAL)
        merges = [f"{a} {b}" for (a, b), _ in sorted(tok.ranks.items(), key=lambda kv: kv[1])]
        return dict(model="gpt2", tokens=tokens, token_types=types, merges=merges, pre=llama_cpp_pre_name(tok.pre_spec),
                    pre_tokenizer=tok.pre_spec, normalizer=tok.normalizer_spec, ignore_merges=tok.ignore_merges,
                    bos_id=tok.bos_id, eos_ids=tok.eos_ids, add_bos=tok.add_bos,
                    chat_template=tok.chat_template)
    if isinstance(tok, SentencePieceTokenizer):
        sp = tok.sp
        tokens, scores, types = [], [], []
        for i in range(sp.get_piece_size()):
            tokens.append(sp.id_to_piece(i))
            scores.append(sp.get_score(i))
            types.append(UNKNOWN if sp.is_unknown(i) else CONTROL if sp.is_control(i) else
                         BYTE if sp.is_byte(i) else USER_DEFINED if sp.is_unused(i) else NORMAL)
        return dict(model="llama", tokens=tokens, token_types=types, scores=scores, bos_id=tok.bos_id,
                    eos_ids=tok.eos_ids, sp_model=tok.sp.serialized_model_proto(), add_bos=tok.add_bos,
                    chat_template=tok.chat_template)
    raise TypeError(f"cannot store a {type(tok).__name__} in a model file")


UNUSED = 5  # llama.cpp's token type of an id no token has


def _hf_tokenizer_metadata(tok) -> dict:
    """A SentencePiece-style tokenizer.json as llama.cpp's "llama" vocabulary (pieces,
    scores, types: what llama.cpp runs) plus the tokenizer.json itself under
    tokenizer.huggingface.json, which pocketlm reads instead: llama.cpp's form loses
    the merge ranks, the pre-tokenizer and the added tokens' flags."""
    if tok.origin is None or tok.origin[0] != "bytes":
        raise TypeError("cannot store an HFTokenizer whose tokenizer.json is gone")
    n = tok.vocab_size
    tokens, scores, types = [], [], []
    for i in range(n):
        t = tok.id_to_token.get(i)
        tokens.append(t if t is not None else f"[PAD{i}]")
        if t is None:
            types.append(UNUSED)
        elif i in tok.special_ids:
            types.append(UNKNOWN if i == tok.unk_id else CONTROL)
        elif i in tok.added_info:
            types.append(USER_DEFINED)
        elif i == tok.unk_id:
            types.append(UNKNOWN)
        elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types.append(BYTE)
        else:
            types.append(NORMAL)
        # Unigram: its scores; BPE: earlier pieces merge first, as SentencePiece's BPE scores order them
        scores.append(tok.scores[i] if tok.model_type == "Unigram" and i < len(tok.scores) else -float(i))
    prepends = any(st[0] == "metaspace" and st[2] != "never" for st in tok.pre_steps) or \
        '"Prepend"' in json.dumps(tok.normalizer_spec)
    return dict(model="llama", tokens=tokens, token_types=types, scores=scores, bos_id=tok.bos_id,
                eos_ids=tok.eos_ids, add_bos=tok.add_bos, chat_template=tok.chat_template, add_space_prefix=prepends,
                huggingface_json=tok.origin[1].decode("utf-8"), extra_special_tokens=tok.extra_special)


# ---- reading -------------------------------------------------------------------------


def read_gguf(path: str | Path, offset: int = 0, length: int | None = None):
    """(ModelConfig, weights, tokenizer, metadata) of a GGUF file, or of the
    GGUF at ``offset`` (``length`` bytes) inside a larger file; tensors stay
    memory-mapped. metadata holds what the runtime above the model uses: the
    chat template. Any failure is a ModelFileError naming the file and the
    key or tensor it came from."""
    from .forward import Weight

    try:
        reader = GGUFFile(path, offset, length)
    except OSError as e:
        raise ModelFileError(f"{path}: not a readable GGUF model file ({type(e).__name__}: {e})") from e
    cfg_json = reader.field("pocketlm.config")
    with reading(path, "pocketlm.config" if cfg_json is not None else
                 f"model metadata ({reader.field('general.architecture')}.*)"):
        if cfg_json is not None and not isinstance(cfg_json, str):
            raise ValueError("must be a string")
        try:
            cfg = config_from_json(cfg_json) if cfg_json is not None else _config_from_llama_cpp(reader)
        except (KeyError, TypeError) as e:
            raise ValueError(f"incomplete model metadata ({type(e).__name__}: {e})") from e
        _check_config(cfg)
    from .checkpoint import expected_shape, required_tensors

    weights = {}
    for t in reader.tensors:
        qt = quant_type(t.tensor_type)
        arr = t.data
        if arr.ndim == 2 and t.name != "position_embd.weight":
            weights[t.name] = Weight(arr, qt.name)
        else:  # vectors (norms, biases) and tables read by row are used as float arrays
            weights[t.name] = np.asarray(arr, dtype=np.float32)
    ff = weights.pop(ROPE_FREQS, None)
    long_short = weights.pop(ROPE_LONG, None), weights.pop(ROPE_SHORT, None)
    for name, arr in zip((ROPE_LONG, ROPE_SHORT), long_short):
        if arr is not None and (arr.shape != (cfg.rot_dim // 2,) or not np.all(np.isfinite(arr)) or not np.all(arr > 0)):
            raise ModelFileError(f"{path}: tensor {name} must hold {cfg.rot_dim // 2} positive factors "
                                 f"(rope dimension count / 2), got shape {arr.shape}")
    if ff is not None and any(a is not None for a in long_short):
        raise ModelFileError(f"{path}: tensor {ROPE_FREQS} beside {ROPE_LONG} / {ROPE_SHORT}: not supported")
    if cfg_json is None and long_short[0] is not None:
        if long_short[1] is None:
            raise ModelFileError(f"{path}: tensor {ROPE_LONG} comes without {ROPE_SHORT}")
        cfg = dataclasses.replace(cfg, rope_freq_factors_long=tuple(float(v) for v in long_short[0]),
                                  rope_freq_factors=tuple(float(v) for v in long_short[1]))
    if ff is not None:
        if ff.shape != (cfg.rot_dim // 2,) or not np.all(np.isfinite(ff)) or not np.all(ff > 0):
            raise ModelFileError(f"{path}: tensor {ROPE_FREQS} must hold {cfg.rot_dim // 2} positive factors "
                                 f"(rope dimension count / 2), got shape {ff.shape}")
        if cfg_json is None:
            cfg = dataclasses.replace(cfg, rope_freq_factors=tuple(float(v) for v in ff))
    with reading(path, "tensor layout"):
        from_llama_cpp_layout(cfg, weights)
    for name, w in weights.items():
        arr = w.data if isinstance(w, Weight) else w
        shape = tuple(arr.shape)
        qt = quant_type(w.qtype) if isinstance(w, Weight) else None
        if qt is not None and qt.is_block:  # rows of block bytes hold row_bytes / block_bytes * block_size values
            shape = (arr.shape[0], arr.shape[1] // qt.block_bytes * qt.block_size)
        want = expected_shape(name, cfg)
        if want is not None and shape != want:  # a file whose tensors contradict its own config is refused
            raise ModelFileError(f"{path}: tensor {name} has shape {shape}, but the file's config implies {want}")
    missing = [n for n in required_tensors(cfg) if n not in weights]
    if missing:
        raise ModelFileError(f"{path}: the file lacks tensors a {cfg.arch} model needs: {', '.join(missing[:5])}"
                             + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""))
    template = reader.field("tokenizer.chat_template")
    if template is not None and not isinstance(template, str):
        raise ModelFileError(f"{path}: tokenizer.chat_template must be a string")
    with reading(path, f"tokenizer ({_tokenizer_keys(reader)})"):
        tok = _tokenizer_from_gguf(reader)
        if tok is not None:
            _check_tokenizer(tok, cfg)
            tok.chat_template = template
            tok.origin = ("gguf", str(path), offset, length or 0)
    return cfg, weights, tok, ({"chat_template": template} if template else {})


def _tokenizer_keys(reader: GGUFFile) -> str:
    if reader.field("tokenizer.huggingface.json") is not None:
        return "tokenizer.huggingface.json"
    return "pocketlm.tokenizer.sp_model" if reader.field("pocketlm.tokenizer.sp_model") is not None else \
        "tokenizer.ggml.*"


def _check_config(cfg: ModelConfig) -> None:
    """Refuses a config no model can have (what a corrupted number gives),
    before any tensor is checked against it or any buffer sized from it."""
    for name in ("vocab_size", "hidden_size", "n_layers", "n_heads", "n_kv_heads", "head_dim",
                 "max_position_embeddings"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 1 << 31:
            raise ValueError(f"{name} {v!r} is not a positive size")
    if not isinstance(cfg.intermediate_size, int) or not 0 <= cfg.intermediate_size < 1 << 31:
        raise ValueError(f"intermediate_size {cfg.intermediate_size!r} is not a size")
    if cfg.n_heads % cfg.n_kv_heads:
        raise ValueError(f"{cfg.n_heads} attention heads are not a multiple of {cfg.n_kv_heads} key/value heads")
    if not (isinstance(cfg.rot_dim, int) and 0 <= cfg.rot_dim <= cfg.head_dim and cfg.rot_dim % 2 == 0):
        raise ValueError(f"rope dimension count {cfg.rot_dim!r} must be even and within head_dim {cfg.head_dim}")
    for name in ("norm_eps", "rope_theta", "rope_freq_scale", "query_scale", "embed_scale", "attn_softcap",
                 "final_softcap"):
        v = getattr(cfg, name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} {v!r} is not a finite non-negative number")
    if cfg.rot_dim and not (cfg.rope_theta > 0 and cfg.rope_freq_scale > 0):
        raise ValueError(f"rope_theta {cfg.rope_theta} and rope_freq_scale {cfg.rope_freq_scale} must be positive")
    if cfg.norm not in ("rms", "layer") or cfg.act not in ("silu", "gelu", "gelu_tanh") \
            or cfg.rope_mode not in ("neox", "gptj") or cfg.positions not in ("rope", "learned", "alibi"):
        raise ValueError(f"unknown norm {cfg.norm!r}, activation {cfg.act!r}, rope mode {cfg.rope_mode!r} or "
                         f"positions {cfg.positions!r}")
    for name in ("rope_freq_factors", "rope_freq_factors_long"):
        v = getattr(cfg, name)
        if v and (len(v) != cfg.rot_dim // 2 or not all(isinstance(x, (int, float)) and x > 0 for x in v)):
            raise ValueError(f"{name} must be {cfg.rot_dim // 2} positive numbers")
    for name in ("rope_local_theta", "rope_local_freq_scale", "rope_attn_factor"):
        v = getattr(cfg, name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} {v!r} is not a finite non-negative number")
    if not isinstance(cfg.rope_long_after, int) or cfg.rope_long_after < 0 \
            or (cfg.rope_freq_factors_long and not cfg.rope_freq_factors):
        raise ValueError(f"longrope needs short factors and a non-negative rope_long_after, got "
                         f"{cfg.rope_long_after!r}")
    if not isinstance(cfg.sliding_window, int) or cfg.sliding_window < 0 \
            or any(not isinstance(i, int) or not 0 <= i < cfg.n_layers for i in cfg.sliding_window_layers):
        raise ValueError(f"sliding window {cfg.sliding_window!r} over layers {cfg.sliding_window_layers!r}")
    for t in (cfg.bos_token_id, *cfg.eos_token_ids):
        if t is not None and (not isinstance(t, int) or not 0 <= t < cfg.vocab_size):
            raise ValueError(f"special token id {t!r} is outside the vocabulary of {cfg.vocab_size}")


def _check_tokenizer(tok, cfg: ModelConfig) -> None:
    """Special ids the tokenizer names must be tokens of the model."""
    for what, t in (("bos_token_id", tok.bos_id), *(("eos_token_id", e) for e in tok.eos_ids)):
        if t is not None and (not isinstance(t, (int, np.integer)) or not 0 <= int(t) < cfg.vocab_size):
            raise ValueError(f"{what} {t!r} is outside the model's vocabulary of {cfg.vocab_size}")


def _config_from_llama_cpp(reader: GGUFFile) -> ModelConfig:
    """The ModelConfig of a file llama.cpp wrote, from its {arch}.* keys and
    tensor names, read as llama.cpp's own graph for that architecture reads them."""
    arch = reader.field("general.architecture")
    if arch not in LLAMA_CPP_ARCH:
        raise ValueError(f"GGUF architecture {arch!r} is not supported; supported: {', '.join(LLAMA_CPP_ARCH)}")

    def f(key, default=None):
        return reader.field(f"{arch}.{key}", default)

    shapes = {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}  # GGUF order: [columns, rows]
    names = set(shapes)
    n_heads = f("attention.head_count")
    hidden = f("embedding_length")
    head_dim = f("attention.key_length", hidden // n_heads)
    if f("attention.value_length", head_dim) != head_dim:
        raise ValueError(f"{arch}.attention.value_length {f('attention.value_length')} differs from the key length "
                         f"{head_dim}: not supported")
    rms_eps = f("attention.layer_norm_rms_epsilon")
    vocab = shapes["token_embd.weight"][-1] if "token_embd.weight" in names else len(reader.field("tokenizer.ggml.tokens"))
    eos = reader.field("tokenizer.ggml.eos_token_id")
    c = dict(arch=LLAMA_CPP_ARCH[arch], vocab_size=vocab, hidden_size=hidden, n_layers=f("block_count"),
             n_heads=n_heads, n_kv_heads=f("attention.head_count_kv", n_heads), head_dim=head_dim,
             intermediate_size=f("feed_forward_length"), max_position_embeddings=f("context_length", 2048),
             norm="rms" if rms_eps is not None else "layer",
             norm_eps=rms_eps if rms_eps is not None else f("attention.layer_norm_epsilon", 1e-5),
             rope_theta=float(f("rope.freq_base", 10000.0)), rot_dim=f("rope.dimension_count", head_dim),
             rope_mode="neox", query_scale=head_dim**-0.5, tie_embeddings="output.weight" not in names,
             qkv_bias="blk.0.attn_q.bias" in names or "blk.0.attn_qkv.bias" in names,
             o_bias="blk.0.attn_output.bias" in names, mlp_bias="blk.0.ffn_up.bias" in names,
             output_bias="output.bias" in names, gated_mlp="blk.0.ffn_gate.weight" in names,
             rope_attn_factor=float(f("rope.scaling.attn_factor", 1.0)),  # every llama.cpp graph's RoPE takes it
             bos_token_id=reader.field("tokenizer.ggml.bos_token_id"), eos_token_ids=() if eos is None else (eos,))
    scaling = f("rope.scaling.type", "none")
    if scaling == "linear":
        factor = f("rope.scaling.factor")
        if not isinstance(factor, (int, float)) or not factor > 0:
            raise ValueError(f"{arch}.rope.scaling.factor must be a positive number, got {factor!r}")
        c["rope_freq_scale"] = 1.0 / float(factor)
    elif scaling != "none":
        raise ValueError(f"{arch}.rope.scaling.type {scaling!r} is not supported; supported: none, linear "
                         "(and llama3's rope_freqs tensor)")
    if arch == "llama":
        c.update(act="silu", rope_mode="gptj")  # llama.cpp's converter permuted Q/K to adjacent pairs
    elif arch in ("gemma", "gemma2"):  # norms are stored as 1 + w, so no offset here
        c.update(act="gelu_tanh", embed_scale=math.sqrt(hidden))
        if arch == "gemma2":
            window = f("attention.sliding_window", 0)
            # llama.cpp scales queries by 1/sqrt(head_dim), by 1/sqrt(hidden / heads) for the 46-layer 27B
            scale = (hidden / n_heads) ** -0.5 if c["n_layers"] == 46 else head_dim**-0.5
            c.update(query_scale=scale, attn_softcap=float(f("attn_logit_softcapping", 0.0)),
                     final_softcap=float(f("final_logit_softcapping", 0.0)), sliding_window=window,
                     sliding_window_layers=tuple(range(0, c["n_layers"], 2)) if window else (), post_norms=True)
    elif arch == "gemma3":
        # llama.cpp's gemma3: norms stored as 1 + w (q/k norms too); a window only with attention.sliding_window,
        # on the layers sliding_window_pattern flags (or n: all but every n-th), 6 when absent; the swa layers
        # rotate on rope.freq_base_swa (10000 by default) unscaled
        window = int(f("attention.sliding_window", 0) or 0)
        sliding: tuple[int, ...] = ()
        if window > 0:
            pattern = f("attention.sliding_window_pattern", 6)
            if isinstance(pattern, list):
                if len(pattern) < c["n_layers"]:
                    raise ValueError(f"{arch}.attention.sliding_window_pattern flags {len(pattern)} layers, the "
                                     f"model has {c['n_layers']}")
                sliding = tuple(i for i in range(c["n_layers"]) if pattern[i])
            else:
                n = int(pattern)
                sliding = tuple(i for i in range(c["n_layers"]) if n == 0 or i % n < n - 1)
        c.update(act="gelu_tanh", embed_scale=math.sqrt(hidden), qk_norm=True, post_norms=True,
                 final_softcap=float(f("final_logit_softcapping", 0.0)), sliding_window=window if sliding else 0,
                 sliding_window_layers=sliding,
                 rope_local_theta=float(f("rope.freq_base_swa", 10000.0)) if sliding else 0.0)
        c["query_scale"] = llama_cpp_gemma3_query_scale(ModelConfig(**c))
    elif arch in ("qwen2", "qwen3"):
        # llama.cpp's Qwen graphs apply no sliding window; Qwen3's q/k norms are there when their tensors are
        c.update(act="silu", qk_norm="blk.0.attn_q_norm.weight" in names)
    elif arch == "phi3":
        # llama.cpp's phi3: fused attn_qkv and ffn_up ([gate; up]), SWA disabled whatever attention.sliding_window
        # says, longrope's factors as rope_factors_long / rope_factors_short (read with the tensors) switching at
        # rope.scaling.original_context_length, rope.scaling.attn_factor on the rotated part
        c.update(act="silu", gated_mlp=True, rope_long_after=int(f("rope.scaling.original_context_length", 0) or 0))
    elif arch == "phi2":
        c.update(act="gelu_tanh", parallel_residual=True)
    elif arch == "stablelm":
        c.update(act="silu", parallel_residual=bool(f("use_parallel_residual", "blk.0.ffn_norm.weight" not in names)))
    elif arch == "gpt2":
        c.update(act="gelu_tanh", rot_dim=0, positions="learned", max_position_embeddings=shapes["position_embd.weight"][-1])
    elif arch == "falcon":
        # the erf GELU Falcon was trained with (llama.cpp's graph uses the tanh approximation); ALiBi Falcon-RW
        # has no llama.cpp form, so llama.cpp's falcon files are rotary
        c.update(act="gelu", parallel_residual=True)
    return ModelConfig(**c)


# llama.cpp's tokenizer.ggml.pre names -> the Hugging Face pre_tokenizer they stand for. llama.cpp applies
# its list of regexes one after another, each match and each gap a piece: a Sequence of Isolated Splits,
# then the byte-level mapping without GPT-2's own regex.
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
_GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                   r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_PATTERN = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _regex_splits(*patterns: str) -> dict:
    return {"type": "Sequence", "pretokenizers": [
        *({"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False} for p in patterns),
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}


_DIGITS_THEN_GPT2 = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL]}
LLAMA_CPP_PRE = {
    # llama.cpp's own default (also when the key is absent): punctuation runs, GPT-2's regex, digit runs
    "default": _regex_splits(r"[\p{P}\$\+<=>\^~\|]+", _GPT2_PATTERN, r"\p{N}+", r"[0-9][0-9][0-9]"),
    **dict.fromkeys(("gpt-2", "phi-2", "mpt", "olmo"), _BYTE_LEVEL),
    **dict.fromkeys(("smollm", "starcoder", "refact", "command-r", "codeshell"), _DIGITS_THEN_GPT2),
    **dict.fromkeys(("llama-bpe", "llama3", "llama-v3", "falcon3"), _regex_splits(_LLAMA3_PATTERN)),
    **dict.fromkeys(("stablelm2", "qwen2"), _regex_splits(_QWEN2_PATTERN)),
    "falcon": _regex_splits(r"[\p{P}\$\+<=>\^~\|`]+", _GPT2_PATTERN, r"[0-9][0-9][0-9]"),
}


# The split regexes of byte-level tokenizer.json files as transformers writes them (Llama 3, Qwen2/2.5/3, the
# GPT-4o family of Phi-4-mini) -> the llama.cpp pre-tokenizer that splits text the same way, written as
# tokenizer.ggml.pre so llama.cpp runs pocketlm's files as the model was trained (pocketlm itself reads the exact
# pre-tokenizer from pocketlm.tokenizer.pre_tokenizer)
_HF_SPLITS_TO_LLAMA_CPP = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+": "qwen2",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+": "gpt-4o",
}


def llama_cpp_pre_name(spec) -> str:
    """tokenizer.ggml.pre for a byte-level pre-tokenizer (tokenizer.json's form): one of llama.cpp's names when
    the split is one it knows, else "gpt-2" (GPT-2's own regex, what a plain ByteLevel pre-tokenizer means)."""
    parts = spec.get("pretokenizers", []) if isinstance(spec, dict) and spec.get("type") == "Sequence" else [spec]
    kinds = [p.get("type") if isinstance(p, dict) else None for p in parts]
    if kinds == ["Split", "ByteLevel"]:
        pattern = parts[0].get("pattern") or {}
        return _HF_SPLITS_TO_LLAMA_CPP.get(pattern.get("Regex"), "gpt-2")
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"  # SmolLM's digits one by one, then GPT-2's regex
    return "gpt-2"


def _llama_cpp_pre_tokenizer(name: str) -> dict:
    if name not in LLAMA_CPP_PRE:
        raise ValueError(f"GGUF pre-tokenizer {name!r} is not supported yet; supported: {', '.join(LLAMA_CPP_PRE)}")
    return LLAMA_CPP_PRE[name]


def _tokenizer_from_gguf(reader: GGUFFile):
    from ..tokenizer import HFTokenizer

    tok = _tokenizer_model_from_gguf(reader)
    if tok is not None and not isinstance(tok, HFTokenizer):  # an HFTokenizer's template says where BOS goes
        # llama.cpp's default when the key is absent: SentencePiece vocabularies start with BOS, BPE ones do not
        add_bos = reader.field("tokenizer.ggml.add_bos_token", reader.field("tokenizer.ggml.model") == "llama")
        tok.add_bos = bool(add_bos) and tok.bos_id is not None
    return tok


def _tokenizer_model_from_gguf(reader: GGUFFile):
    from ..tokenizer import BPETokenizer, SentencePieceTokenizer

    model = reader.field("tokenizer.ggml.model")
    if model is None:
        return None
    bos = reader.field("tokenizer.ggml.bos_token_id")
    eos = reader.field("pocketlm.tokenizer.eos_token_ids")
    if eos is None:
        e = reader.field("tokenizer.ggml.eos_token_id")
        eos = [] if e is None else [e]
    hf_json = reader.field("tokenizer.huggingface.json")
    if hf_json is not None:  # the exact tokenizer.json, preferred over llama.cpp's vocabulary
        from ..tokenizer import HFTokenizer, is_byte_level, parse_tokenizer_json

        spec = parse_tokenizer_json(hf_json)  # the merges parsed on first encode
        if is_byte_level(spec):
            return BPETokenizer(spec, bos, tuple(eos))
        extra = json.loads(reader.field("pocketlm.tokenizer.extra_special_tokens", "[]"))
        tok = HFTokenizer(spec, bos, tuple(eos), tuple(extra))
        tok.origin = ("bytes", hf_json.encode("utf-8"))
        return tok
    sp_model = reader.field("pocketlm.tokenizer.sp_model")
    if sp_model is not None:
        return SentencePieceTokenizer(base64.b64decode(sp_model), bos, tuple(eos))
    if model == "gpt2":
        tokens = reader.field("tokenizer.ggml.tokens")
        types = reader.field("tokenizer.ggml.token_type")
        merges = reader.field("tokenizer.ggml.merges") or []
        pre = reader.field("pocketlm.tokenizer.pre_tokenizer")
        pre_name = reader.field("tokenizer.ggml.pre", "default")
        pre_spec = json.loads(pre) if pre else _llama_cpp_pre_tokenizer(pre_name)
        # llama.cpp tokenizes its Llama-3 pre-tokenizer family with ignore_merges
        ignore_merges = bool(reader.field("pocketlm.tokenizer.ignore_merges",
                                          not pre and pre_name in ("llama-bpe", "llama3", "llama-v3", "falcon3")))
        # matched before any normalizer, as BPETokenizer matched them when the file was written
        added = [{"id": i, "content": t, "special": ty == CONTROL, "normalized": False}
                 for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (CONTROL, USER_DEFINED)]
        vocab = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty not in (CONTROL, USER_DEFINED)}
        normalizer = reader.field("pocketlm.tokenizer.normalizer")
        spec = {"model": {"type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": ignore_merges},
                "added_tokens": added,
                "pre_tokenizer": pre_spec,
                "normalizer": json.loads(normalizer) if normalizer else None}
        return BPETokenizer(spec, bos, tuple(eos))
    if model == "llama":  # llama.cpp's SentencePiece vocabulary: pieces + scores
        from ..tokenizer import ScoredPieceTokenizer

        return ScoredPieceTokenizer(reader.field("tokenizer.ggml.tokens"), reader.field("tokenizer.ggml.scores"),
                                    reader.field("tokenizer.ggml.token_type"), bos, tuple(eos),
                                    bool(reader.field("tokenizer.ggml.add_space_prefix", True)))
    raise ValueError(f"tokenizer model {model!r} in this GGUF file is not supported yet (gpt2 BPE and llama "
                     "SentencePiece are)")
