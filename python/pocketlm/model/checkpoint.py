"""Hugging Face checkpoint folders -> canonical tensors.

Reads model.safetensors, or the shards a model.safetensors.index.json
lists, memory-mapped (our own reader of the format, so BF16 works without
torch), and renames each architecture's tensors onto one canonical naming:
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

from .config import ModelConfig

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of one .safetensors file as a read-only memory-mapped array
    (BF16 tensors come back as float32 copies, NumPy having no bfloat16)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in _ST_DTYPES:
            raise ValueError(f"{path.name}: tensor {name} has unsupported dtype {dtype}")
        begin, end = info["data_offsets"]
        arr = data[begin:end].view(_ST_DTYPES[dtype]).reshape(info["shape"])
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    return out


def read_checkpoint_tensors(folder: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint folder under their Hugging Face names."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        tensors: dict[str, np.ndarray] = {}
        for shard in shards:
            tensors.update(read_safetensors(folder / shard))
        return tensors
    single = folder / "model.safetensors"
    if single.is_file():
        return read_safetensors(single)
    raise FileNotFoundError(f"{folder}: no model.safetensors or model.safetensors.index.json")


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

NAME_MAPS = {"llama": _LLAMA_NAMES, "mistral": _LLAMA_NAMES, "gemma": _LLAMA_NAMES, "gemma2": _GEMMA2_NAMES}


def canonical_tensors(hf: dict[str, np.ndarray], cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Renames to canonical names and checks every tensor the config needs is there."""
    rules = [(re.compile(p + r"\Z"), r) for p, r in NAME_MAPS[cfg.arch]]
    out = {}
    for name, arr in hf.items():
        for pat, rep in rules:
            if pat.match(name):
                out[pat.sub(rep, name)] = arr
                break
    missing = [n for n in required_tensors(cfg) if n not in out]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise ValueError(f"checkpoint lacks tensors {', '.join(missing[:5])}{more} that a {cfg.arch} model needs")
    return out


def required_tensors(cfg: ModelConfig) -> list[str]:
    names = ["token_embd.weight", "output_norm.weight"]
    if not cfg.tie_embeddings:
        names.append("output.weight")
    for i in range(cfg.n_layers):
        b = f"blk.{i}."
        names += [b + "attn_norm.weight", b + "ffn_norm.weight"]
        names += [b + f"attn_{p}.weight" for p in ("q", "k", "v", "output")]
        names += [b + f"ffn_{p}.weight" for p in (("gate", "up", "down") if cfg.gated_mlp else ("up", "down"))]
        if cfg.qkv_bias:
            names += [b + f"attn_{p}.bias" for p in ("q", "k", "v")]
        if cfg.o_bias:
            names.append(b + "attn_output.bias")
        if cfg.post_norms:
            names += [b + "post_attention_norm.weight", b + "post_ffw_norm.weight"]
    return names
