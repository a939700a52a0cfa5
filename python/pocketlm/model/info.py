"""What a loaded model is, in figures: parameters, bytes of weights by type,
KV-cache bytes per token and for a whole context. `pocketlm info` prints them (engine/base.py's
describe), the engines and the device simulation count memory with them; they
read the model only and know no engine."""

from __future__ import annotations

from collections import Counter

import numpy as np

from .forward import Model, Weight, kv_lengths
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



def kv_cache_bytes(model_or_cfg, n_ctx: int, kv_type: str = "F32") -> int:
    """Keys and values a session of n_ctx positions holds, in the cache's type:
    every layer n_ctx positions, but a sliding-window layer only the ring of
    its window (forward.kv_lengths), as pocketlm's engines and LiteRT-LM keep them."""
    c = getattr(model_or_cfg, "cfg", model_or_cfg)
    per_position = 2 * c.n_kv_heads * c.head_dim * (2 if kv_type == "F16" else 4)
    return per_position * sum(kv_lengths(c, n_ctx))
