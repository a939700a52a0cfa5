"""Hugging Face checkpoint folders -> canonical tensors.

Reads model.safetensors, or the shards a model.safetensors.index.json
lists, memory-mapped (our own reader of the format, so BF16 works without
torch), else pytorch_model.bin (sharded too) through torch_bin's safe reader, and renames each architecture's tensors onto one canonical naming:
llama.cpp's GGUF names (token_embd.weight, blk.N.attn_q.weight, ...), so the
converter can write them as they are. A tensor the architecture needs but
the checkpoint lacks is an error that names it.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, reading
from .config import ModelConfig

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of one .safetensors file as a read-only memory-mapped array
    (BF16 tensors come back as float32 copies, NumPy having no bfloat16).
    The header is checked before use: its length against the file, each
    tensor's dtype, shape and data offsets against the data it claims."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelFileError(f"{path}: truncated: no safetensors header length")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise ModelFileError(f"{path}: corrupted safetensors header: it claims {header_len} bytes, the file has "
                                 f"{size - 8} after the length")
        raw = f.read(header_len)
    with reading(path, "safetensors header (JSON)"):
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
    n_data = size - 8 - header_len
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len) if n_data else np.zeros(0, np.uint8)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {name}"
        if not isinstance(info, dict):
            raise ModelFileError(f"{where}: header entry is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _ST_DTYPES:
            raise ModelFileError(f"{where} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise ModelFileError(f"{where}: shape {shape!r} is not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= n_data):
            raise ModelFileError(f"{where}: data_offsets {offsets!r} are not within the {n_data} data bytes")
        itemsize = 2 if dtype == "BF16" else np.dtype(_ST_DTYPES[dtype]).itemsize
        if offsets[1] - offsets[0] != int(np.prod(shape, dtype=np.int64)) * itemsize:
            raise ModelFileError(f"{where}: data_offsets {offsets} hold {offsets[1] - offsets[0]} bytes, shape "
                                 f"{shape} of {dtype} needs {int(np.prod(shape, dtype=np.int64)) * itemsize}")
        arr = data[offsets[0]:offsets[1]].view(_ST_DTYPES[dtype]).reshape(shape)
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    return out


def _index_shards(index: Path) -> list[str]:
    with reading(index, "weight_map"):
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if not all(isinstance(s, str) and "/" not in s and s not in ("", ".", "..") for s in shards):
            raise ValueError(f"shard names must be file names in the folder, got {shards}")
    return shards


def read_checkpoint_tensors(folder: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint folder under their Hugging Face names."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        tensors: dict[str, np.ndarray] = {}
        for shard in _index_shards(index):
            tensors.update(read_safetensors(folder / shard))
        return tensors
    single = folder / "model.safetensors"
    if single.is_file():
        return read_safetensors(single)
    from .torch_bin import read_torch_bin

    bin_index = folder / "pytorch_model.bin.index.json"
    if bin_index.is_file():
        tensors = {}
        for shard in _index_shards(bin_index):
            with reading(folder / shard, "pytorch checkpoint"):
                tensors.update(read_torch_bin(folder / shard))
        return tensors
    if (folder / "pytorch_model.bin").is_file():
        with reading(folder / "pytorch_model.bin", "pytorch checkpoint"):
            return read_torch_bin(folder / "pytorch_model.bin")
    raise FileNotFoundError(f"{folder}: no model.safetensors(.index.json) or pytorch_model.bin(.index.json)")


# Hugging Face name pattern -> canonical name, per architecture family.
_LLAMA_NAMES = [
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blk.\1.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", r"blk.\1.attn_q.\2"),
    (r"model\.layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)", r"blk.\1.attn_k.\2"),
    (r"model\.layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)", r"blk.\1.attn_v.\2"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)", r"blk.\1.attn_output.\2"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blk.\1.ffn_norm.weight"),
    (r"model\.layers\.(\d+)\.mlp\.gate_proj\.(weight|bias)", r"blk.\1.ffn_gate.\2"),
    (r"model\.layers\.(\d+)\.mlp\.up_proj\.(weight|bias)", r"blk.\1.ffn_up.\2"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj\.(weight|bias)", r"blk.\1.ffn_down.\2"),
]
# Gemma-2 has four norms a layer: post_attention_layernorm follows attention there.
_GEMMA2_NAMES = [
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blk.\1.post_attention_norm.weight"),
    (r"model\.layers\.(\d+)\.pre_feedforward_layernorm\.weight", r"blk.\1.ffn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_feedforward_layernorm\.weight", r"blk.\1.post_ffw_norm.weight"),
] + [p for p in _LLAMA_NAMES if "post_attention_layernorm" not in p[0]]

_L = r"model\.layers\.(\d+)\."
_WB = r"(weight|bias)"
_PHI_NAMES = [
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.final_layernorm\." + _WB, r"output_norm.\1"),
    (r"lm_head\." + _WB, r"output.\1"),
    (_L + r"input_layernorm\." + _WB, r"blk.\1.attn_norm.\2"),
    (_L + r"self_attn\.q_proj\." + _WB, r"blk.\1.attn_q.\2"),
    (_L + r"self_attn\.k_proj\." + _WB, r"blk.\1.attn_k.\2"),
    (_L + r"self_attn\.v_proj\." + _WB, r"blk.\1.attn_v.\2"),
    (_L + r"self_attn\.dense\." + _WB, r"blk.\1.attn_output.\2"),
    (_L + r"mlp\.fc1\." + _WB, r"blk.\1.ffn_up.\2"),
    (_L + r"mlp\.fc2\." + _WB, r"blk.\1.ffn_down.\2"),
]
_STABLELM_NAMES = [
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\." + _WB, r"output_norm.\1"),
    (r"lm_head\.weight", "output.weight"),
    (_L + r"input_layernorm\." + _WB, r"blk.\1.attn_norm.\2"),
    (_L + r"post_attention_layernorm\." + _WB, r"blk.\1.ffn_norm.\2"),
] + [p for p in _LLAMA_NAMES if "self_attn" in p[0] or "mlp" in p[0]]
_G = r"(?:transformer\.)?h\.(\d+)\."
_GPT2_NAMES = [
    (r"(?:transformer\.)?wte\.weight", "token_embd.weight"),
    (r"(?:transformer\.)?wpe\.weight", "position_embd.weight"),
    (r"(?:transformer\.)?ln_f\." + _WB, r"output_norm.\1"),
    (_G + r"ln_1\." + _WB, r"blk.\1.attn_norm.\2"),
    (_G + r"ln_2\." + _WB, r"blk.\1.ffn_norm.\2"),
    (_G + r"attn\.c_attn\." + _WB, r"blk.\1.attn_qkv.\2"),
    (_G + r"attn\.c_proj\." + _WB, r"blk.\1.attn_output.\2"),
    (_G + r"mlp\.c_fc\." + _WB, r"blk.\1.ffn_up.\2"),
    (_G + r"mlp\.c_proj\." + _WB, r"blk.\1.ffn_down.\2"),
]
_F = r"transformer\.h\.(\d+)\."
_FALCON_NAMES = [
    (r"transformer\.word_embeddings\.weight", "token_embd.weight"),
    (r"transformer\.ln_f\." + _WB, r"output_norm.\1"),
    (r"lm_head\.weight", "output.weight"),
    (_F + r"(?:input_layernorm|ln_attn)\." + _WB, r"blk.\1.attn_norm.\2"),
    (_F + r"(?:post_attention_layernorm|ln_mlp)\." + _WB, r"blk.\1.ffn_norm.\2"),
    (_F + r"self_attention\.query_key_value\." + _WB, r"blk.\1.attn_qkv.\2"),
    (_F + r"self_attention\.dense\." + _WB, r"blk.\1.attn_output.\2"),
    (_F + r"mlp\.dense_h_to_4h\." + _WB, r"blk.\1.ffn_up.\2"),
    (_F + r"mlp\.dense_4h_to_h\." + _WB, r"blk.\1.ffn_down.\2"),
]

# per-head q/k RMSNorm (Gemma 3, Qwen3)
_QK_NORM_NAMES = [
    (_L + r"self_attn\.q_norm\.weight", r"blk.\1.attn_q_norm.weight"),
    (_L + r"self_attn\.k_norm\.weight", r"blk.\1.attn_k_norm.weight"),
]
# Phi-3's fused projections, split in canonical_tensors: qkv_proj is [q; k; v] by rows, gate_up_proj [gate; up]
_PHI3_NAMES = [
    (_L + r"self_attn\.qkv_proj\.weight", r"blk.\1.attn_qkv.weight"),
    (_L + r"mlp\.gate_up_proj\.weight", r"blk.\1.ffn_gate_up.weight"),
] + [p for p in _LLAMA_NAMES if "q_proj" not in p[0] and "k_proj" not in p[0] and "v_proj" not in p[0]
     and "gate_proj" not in p[0] and "up_proj" not in p[0]]
# A multimodal Gemma 3 keeps its language model under model.language_model. (transformers 5) or
# language_model.model. (earlier checkpoints); its vision tower and projector are not loaded.
_GEMMA3_PREFIXES = [(re.compile(r"(?:model\.language_model|language_model\.model)\."), "model."),
                    (re.compile(r"language_model\.lm_head\."), "lm_head.")]

NAME_MAPS = {"llama": _LLAMA_NAMES, "mistral": _LLAMA_NAMES, "gemma": _LLAMA_NAMES, "gemma2": _GEMMA2_NAMES,
             "phi": _PHI_NAMES, "stablelm": _STABLELM_NAMES, "gpt2": _GPT2_NAMES, "falcon": _FALCON_NAMES,
             "gemma3": _GEMMA2_NAMES + _QK_NORM_NAMES, "qwen2": _LLAMA_NAMES, "qwen3": _LLAMA_NAMES + _QK_NORM_NAMES,
             "phi3": _PHI3_NAMES}


def split_fused_qkv(fused: np.ndarray, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The q, k and v rows of a fused projection as a Hugging Face checkpoint
    stores them (rows = outputs; any number of columns).

    GPT-2's c_attn (after the Conv1D transpose) and Phi-3's qkv_proj are
    [q; k; v] by rows. Falcon's
    query_key_value interleaves per kv group: each group holds its
    n_heads / n_kv_heads query heads, then one key head, then one value head
    (the classic multi-query and multi-head layouts are its special cases
    with one group, or one query head a group).
    """
    hd, nq, nkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    if cfg.arch in ("gpt2", "phi3"):
        q, k, v = np.split(fused, [cfg.q_dim, cfg.q_dim + cfg.kv_dim], axis=0)
    else:
        per_group = nq // nkv + 2
        g = fused.reshape(nkv, per_group, hd, *fused.shape[1:])
        q = g[:, :-2].reshape(nq * hd, *fused.shape[1:])
        k = g[:, -2].reshape(nkv * hd, *fused.shape[1:])
        v = g[:, -1].reshape(nkv * hd, *fused.shape[1:])
    return np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v)


def _split_qkv(t: dict[str, np.ndarray], cfg: ModelConfig) -> None:
    """Fused q/k/v projections -> attn_q, attn_k, attn_v (see split_fused_qkv)."""
    for name in [n for n in t if ".attn_qkv." in n]:
        fused = np.asarray(t.pop(name))
        base = name.replace(".attn_qkv.", ".attn_{}.")
        for part, arr in zip("qkv", split_fused_qkv(fused, cfg)):
            t[base.format(part)] = arr


def text_model_name(name: str, arch: str) -> str:
    """A checkpoint tensor's name as the text model's own (a multimodal Gemma 3's language model)."""
    if arch == "gemma3":
        for pat, rep in _GEMMA3_PREFIXES:
            if pat.match(name):
                return pat.sub(rep, name, count=1)
    return name


def _split_gate_up(t: dict[str, np.ndarray]) -> None:
    """Phi-3's fused gate_up_proj -> ffn_gate (first half of the rows), ffn_up (second half)."""
    for name in [n for n in t if ".ffn_gate_up." in n]:
        fused = np.asarray(t.pop(name))
        gate, up = np.split(fused, 2, axis=0)
        t[name.replace(".ffn_gate_up.", ".ffn_gate.")] = np.ascontiguousarray(gate)
        t[name.replace(".ffn_gate_up.", ".ffn_up.")] = np.ascontiguousarray(up)


def canonical_tensors(hf: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Renames to canonical names and checks every tensor the config needs is there."""
    rules = [(re.compile(p + r"\Z"), r) for p, r in NAME_MAPS[cfg.arch]]
    out = {}
    for name, arr in hf.items():
        name = text_model_name(name, cfg.arch)
        for pat, rep in rules:
            if pat.match(name):
                out[pat.sub(rep, name)] = arr
                break
    if cfg.arch == "gpt2":  # Conv1D stores [in, out]; canonical matrices are [out, in]
        for name in list(out):
            if name.endswith(".weight") and name.startswith("blk.") and ".attn_norm" not in name and ".ffn_norm" not in name:
                out[name] = np.ascontiguousarray(np.asarray(out[name]).T)
    _split_qkv(out, cfg)
    _split_gate_up(out)
    for name, arr in out.items():
        want = expected_shape(name, cfg)
        if want is not None and tuple(arr.shape) != want:
            raise ValueError(f"tensor {name} has shape {tuple(arr.shape)}, but the config implies {want}")
    missing = [n for n in required_tensors(cfg) if n not in out]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise ValueError(f"checkpoint lacks tensors {', '.join(missing[:5])}{more} that a {cfg.arch} model needs")
    return out


def required_tensors(cfg: ModelConfig) -> list[str]:
    names = ["token_embd.weight", "output_norm.weight"]
    if cfg.norm == "layer":
        names.append("output_norm.bias")
    if not cfg.tie_embeddings:
        names.append("output.weight")
    if cfg.output_bias:
        names.append("output.bias")
    if cfg.positions == "learned":
        names.append("position_embd.weight")
    for i in range(cfg.n_layers):
        b = f"blk.{i}."
        names += [b + "attn_norm.weight"] + ([b + "attn_norm.bias"] if cfg.norm == "layer" else [])
        if not cfg.parallel_residual:
            names += [b + "ffn_norm.weight"] + ([b + "ffn_norm.bias"] if cfg.norm == "layer" else [])
        names += [b + f"attn_{p}.weight" for p in ("q", "k", "v", "output")]
        names += [b + f"ffn_{p}.weight" for p in (("gate", "up", "down") if cfg.gated_mlp else ("up", "down"))]
        if cfg.qkv_bias:
            names += [b + f"attn_{p}.bias" for p in ("q", "k", "v")]
        if cfg.o_bias:
            names.append(b + "attn_output.bias")
        if cfg.mlp_bias:
            names += [b + f"ffn_{p}.bias" for p in (("gate", "up", "down") if cfg.gated_mlp else ("up", "down"))]
        if cfg.post_norms:
            names += [b + "post_attention_norm.weight", b + "post_ffw_norm.weight"]
        if cfg.qk_norm:
            names += [b + "attn_q_norm.weight", b + "attn_k_norm.weight"]
    return names


def expected_shape(name: str, cfg: ModelConfig) -> tuple[int, ...] | None:
    """The shape config.json implies for a canonical tensor (None: not checked)."""
    h, f = cfg.hidden_size, cfg.intermediate_size
    if name in ("token_embd.weight", "output.weight"):
        return (cfg.vocab_size, h)
    if name == "position_embd.weight":
        return (cfg.max_position_embeddings, h)
    if name.startswith("output_norm."):
        return (h,)
    m = re.match(r"blk\.\d+\.(\w+)\.(weight|bias)\Z", name)
    if not m:
        return None
    kind, wb = m.groups()
    rows_cols = {"attn_q": (cfg.q_dim, h), "attn_k": (cfg.kv_dim, h), "attn_v": (cfg.kv_dim, h),
                 "attn_output": (h, cfg.q_dim), "ffn_gate": (f, h), "ffn_up": (f, h), "ffn_down": (h, f)}
    if kind in rows_cols:
        return rows_cols[kind] if wb == "weight" else (rows_cols[kind][0],)
    if kind in ("attn_q_norm", "attn_k_norm"):
        return (cfg.head_dim,)
    if kind.endswith("norm"):
        return (h,)
    return None
