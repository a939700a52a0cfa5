"""What a loaded model is, in figures: parameters, bytes of weights by type,
KV-cache bytes per token, tokenizer. `pocketlm info` prints it; the device
simulation builds its memory and speed figures on the same counts."""

from __future__ import annotations

from collections import Counter

import numpy as np

from .forward import Model, Weight
from .quant import quant_type


def tensor_elements(w: Weight | np.ndarray) -> int:
    if isinstance(w, Weight):
        qt = quant_type(w.qtype)
        rows, row_bytes = w.data.shape
        return rows * (row_bytes // qt.block_bytes * qt.block_size if qt.is_block else w.data.shape[1])
    return int(np.asarray(w).size)


def tensor_bytes(w: Weight | np.ndarray) -> int:
    return int((w.data if isinstance(w, Weight) else np.asarray(w)).nbytes)


def parameter_count(model: Model) -> int:
    return sum(tensor_elements(w) for w in model.w.values())


def weight_bytes(model: Model) -> int:
    return sum(tensor_bytes(w) for w in model.w.values())


def weight_types(model: Model) -> dict[str, int]:
    """Parameters held in each storage type."""
    counts: Counter[str] = Counter()
    for w in model.w.values():
        counts[w.qtype if isinstance(w, Weight) else "F32"] += tensor_elements(w)
    return dict(counts.most_common())


def kv_bytes_per_token(model_or_cfg, kv_type: str = "F32") -> int:
    """Keys and values of one position across all layers, in the cache's type (F32 or F16)."""
    c = getattr(model_or_cfg, "cfg", model_or_cfg)
    return 2 * c.n_layers * c.n_kv_heads * c.head_dim * (2 if kv_type == "F16" else 4)


def describe(engine) -> dict[str, str]:
    """Lines of `pocketlm info` for an engine.Engine."""
    from ..engine.native_engine import describe_engine

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
