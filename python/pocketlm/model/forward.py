"""The transformer forward pass in Python over a kernel backend.

One function for every architecture: it branches only on ModelConfig. It
reads as the same list of steps as the C engine will (norm, q/k/v, RoPE,
cache write, attention, output projection, residual, norm, MLP, residual),
so the two can be held side by side. Weights are canonical tensors
(checkpoint.py), matrices kept as F32, F16, Q8_0 or Q4_0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import kernels
from .checkpoint import canonical_tensors, read_checkpoint_tensors
from .config import ModelConfig, load_config
from .quant import quant_type

_MATRICES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@dataclass
class Weight:
    data: np.ndarray  # F32 / F16 [n, k] or uint8 block rows [n, row_bytes]
    qtype: str  # F32, F16, Q8_0, Q4_0, Q4_1


def alibi_slopes(n_heads: int) -> np.ndarray:
    """ALiBi's per-head slopes (Press et al.; as Falcon and BLOOM build them):
    a geometric series for the largest power of two <= n_heads, then every
    other term of the next power's series for the remaining heads."""
    p2 = 2 ** int(np.floor(np.log2(n_heads)))
    base = 2.0 ** (-(2.0 ** -(np.log2(p2) - 3)))
    slopes = base ** np.arange(1, p2 + 1)
    if p2 != n_heads:
        extra = 2.0 ** (-(2.0 ** -(np.log2(2 * p2) - 3)))
        slopes = np.concatenate([slopes, extra ** np.arange(1, 2 * (n_heads - p2), 2)])
    return slopes.astype(np.float32)


def _scaled_alibi(cfg: ModelConfig) -> np.ndarray | None:
    """Slopes as the attention kernel takes them: ALiBi is added before the score
    scaling in Falcon, so the kernel's post-scaling bias carries the scale."""
    return alibi_slopes(cfg.n_heads) * np.float32(cfg.query_scale) if cfg.positions == "alibi" else None


@dataclass
class TrafficCounters:
    """What forward passes read and computed, counted as they run: the inputs
    of the device speed estimate (weights and KV cache are what a phone
    streams from DRAM; flops are what its cores compute)."""

    tokens: int = 0  # positions run through the model
    weight_bytes: int = 0  # bytes of weights read (each matrix once per pass, embedding rows as looked up)
    kv_bytes: int = 0  # bytes of keys and values read by attention
    flops: int = 0  # multiply-adds x 2 of the matrix products and attention

    def snapshot(self) -> "TrafficCounters":
        return TrafficCounters(self.tokens, self.weight_bytes, self.kv_bytes, self.flops)

    def since(self, before: "TrafficCounters") -> "TrafficCounters":
        return TrafficCounters(self.tokens - before.tokens, self.weight_bytes - before.weight_bytes,
                               self.kv_bytes - before.kv_bytes, self.flops - before.flops)


KV_TYPES = {"F32": np.float32, "F16": np.float16}

# the Python engine prefills in batches of at most this many tokens (llama.cpp's default n_batch, as the C
# engine's PLM_DEFAULT_BATCH): it bounds a forward pass's activation memory, whatever the prompt length
PREFILL_CHUNK = 512


class KVCache:
    """Keys and values of every layer for up to n_ctx positions, F32 or F16
    (F16: values rounded to half on the way in and read back as F32, as the C
    engine and llama.cpp keep them)."""

    def __init__(self, cfg: ModelConfig, n_ctx: int, kv_type: str = "F32"):
        if kv_type not in KV_TYPES:
            raise ValueError(f"the KV cache is kept as F32 or F16, not {kv_type!r}")
        shape = (cfg.n_layers, n_ctx, cfg.n_kv_heads, cfg.head_dim)
        self.k = np.zeros(shape, dtype=KV_TYPES[kv_type])
        self.v = np.zeros(shape, dtype=KV_TYPES[kv_type])
        self.kv_type = kv_type
        self.n_ctx = n_ctx
        self.n_past = 0  # positions filled so far

    def layer(self, layer: int, n_kv: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and values of positions 0 .. n_kv-1 of a layer, as F32."""
        k, v = self.k[layer, :n_kv], self.v[layer, :n_kv]
        if self.k.dtype != np.float32:
            k, v = k.astype(np.float32), v.astype(np.float32)
        return k, v


class Model:
    # (path, offset, length) of the GGUF the weights are mapped from, for the C
    # engine to map the same bytes; None when they live only in this process
    source: tuple[str, int, int] | None = None

    def __init__(self, cfg: ModelConfig, tensors: dict[str, np.ndarray], weight_type: str = "F32", backend=None):
        self.cfg = cfg
        self.k = backend or kernels.get_backend()
        wt = quant_type(weight_type)
        if wt.name not in ("F32", "F16", "Q8_0", "Q4_0", "Q4_1"):
            raise ValueError(f"weights can be kept as F32, F16, Q8_0, Q4_0 or Q4_1, not {weight_type}")
        self.w: dict[str, Weight | np.ndarray] = {}
        for name, arr in tensors.items():
            is_matrix = arr.ndim == 2 and (name.split(".")[-2] in _MATRICES or name in ("output.weight", "token_embd.weight"))
            # position_embd stays F32: it is read by row, like a norm weight
            if is_matrix:
                t = wt.name if arr.shape[1] % wt.block_size == 0 else "F32"
                if t == "F32" and arr.dtype == np.float32:
                    # already in the wanted type: keep the memory-mapped array itself, no copy
                    self.w[name] = Weight(np.ascontiguousarray(arr), t)
                else:
                    self.w[name] = Weight(self.k.quantize(np.ascontiguousarray(arr, dtype=np.float32), t), t)
            else:
                self.w[name] = np.ascontiguousarray(arr, dtype=np.float32)
        self.weight_type = wt.name
        self.alibi_slopes = _scaled_alibi(cfg)
        self.counters = TrafficCounters()

    @classmethod
    def from_typed(cls, cfg: ModelConfig, weights: dict[str, "Weight | np.ndarray"], backend=None) -> "Model":
        """A model over weights already in their storage types (a GGUF file's
        tensors): nothing is converted or copied."""
        self = cls.__new__(cls)
        self.cfg, self.k, self.w = cfg, backend or kernels.get_backend(), dict(weights)
        types = {w.qtype for w in self.w.values() if isinstance(w, Weight)}
        self.weight_type = "+".join(sorted(types))
        self.alibi_slopes = _scaled_alibi(cfg)
        self.counters = TrafficCounters()
        return self

    @classmethod
    def from_pretrained(cls, folder: str | Path, weight_type: str = "F32", backend=None) -> "Model":
        from ..errors import reading

        cfg = load_config(folder)
        tensors = read_checkpoint_tensors(folder)
        with reading(folder, "checkpoint tensors"):
            tensors = canonical_tensors(tensors, cfg)
        return cls(cfg, tensors, weight_type, backend)

    # -- helpers ---------------------------------------------------------------------

    @property
    def rope_freq_factors(self) -> np.ndarray | None:
        ff = self.cfg.rope_freq_factors
        return np.asarray(ff, dtype=np.float32) if ff else None

    def _linear(self, x: np.ndarray, name: str, lora=None) -> np.ndarray:
        w = self.w[name + ".weight"]
        y = self.k.matmul(x, w.data, w.qtype)
        self.counters.weight_bytes += w.data.nbytes
        self.counters.flops += 2 * y.size * x.shape[-1]
        pair = lora.pairs.get(name + ".weight") if lora is not None else None
        if pair is not None:  # unmerged LoRA: y += (x A^T) B^T, the scale folded into B
            y = y + (x @ pair.a.T) @ pair.b.T
            self.counters.weight_bytes += pair.a.nbytes + pair.b.nbytes
            self.counters.flops += 2 * pair.rank * x.shape[0] * (x.shape[-1] + y.shape[-1])
        b = self.w.get(name + ".bias")
        return y + b if b is not None else y

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        c = self.cfg
        if c.norm == "rms":
            return self.k.rms_norm(x, self.w[name + ".weight"], c.norm_eps, c.norm_w_offset)
        return self.k.layer_norm(x, self.w.get(name + ".weight"), self.w.get(name + ".bias"), c.norm_eps)

    def _act_mul(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        if self.cfg.act == "silu":
            return self.k.silu_mul(gate, up)
        return self.k.gelu_mul(gate, up, self.cfg.act == "gelu_tanh")

    # -- the forward pass ---------------------------------------------------------------

    def forward(self, tokens, cache: KVCache, last_only: bool = False, lora=None) -> np.ndarray:
        """Runs tokens at positions cache.n_past.. and returns their logits
        [n, vocab] (only the last position's, [1, vocab], when last_only:
        what generation needs, without the classifier over the whole prompt).
        lora: a LoraAdapter (model/lora.py) applied unmerged to the weights it adapts."""
        c, k = self.cfg, self.k
        tokens = np.asarray(tokens, dtype=np.int32).reshape(-1)
        n, pos0 = tokens.size, cache.n_past
        if pos0 + n > cache.n_ctx:
            raise ValueError(f"{pos0 + n} positions do not fit the cache's {cache.n_ctx}")
        positions = np.arange(pos0, pos0 + n, dtype=np.int32)
        ff = self.rope_freq_factors  # once a pass, for every layer's RoPE

        # token embedding
        emb = self.w["token_embd.weight"]
        x = k.get_rows(emb.data, emb.qtype, tokens, c.hidden_size)
        self.counters.tokens += n
        self.counters.weight_bytes += n * emb.data.nbytes // emb.data.shape[0]
        if c.embed_scale != 1.0:
            x *= np.float32(c.embed_scale)
        if c.positions == "learned":
            if pos0 + n > c.max_position_embeddings:
                raise ValueError(f"position {pos0 + n - 1} is past the model's {c.max_position_embeddings} learned positions")
            x = k.add(x, self.w["position_embd.weight"][pos0 : pos0 + n])

        for layer in range(c.n_layers):
            b = f"blk.{layer}."
            # attention norm
            h = self._norm(x, b + "attn_norm")
            # q, k, v projections for these positions
            q = self._linear(h, b + "attn_q", lora).reshape(n, c.n_heads, c.head_dim)
            kk = self._linear(h, b + "attn_k", lora).reshape(n, c.n_kv_heads, c.head_dim)
            v = self._linear(h, b + "attn_v", lora).reshape(n, c.n_kv_heads, c.head_dim)
            # rotary position embedding
            if c.rot_dim:
                k.rope(q, positions, c.rope_theta, c.rot_dim, c.rope_mode, c.rope_freq_scale, ff)
                k.rope(kk, positions, c.rope_theta, c.rot_dim, c.rope_mode, c.rope_freq_scale, ff)
            # write keys and values into the cache
            cache.k[layer, pos0 : pos0 + n] = kk
            cache.v[layer, pos0 : pos0 + n] = v
            # causal attention over the cache
            window = c.sliding_window if layer in c.sliding_window_layers else 0
            kc, vc = cache.layer(layer, pos0 + n)
            att = k.attention(q, kc, vc, pos0 + n, pos0, c.query_scale, c.attn_softcap, window, self.alibi_slopes)
            self.counters.kv_bytes += 2 * (pos0 + n) * c.n_kv_heads * c.head_dim * cache.k.itemsize
            self.counters.flops += 4 * n * (pos0 + n) * c.q_dim  # scores and weighted values (upper bound)
            # output projection
            o = self._linear(att.reshape(n, c.q_dim), b + "attn_output", lora)
            if c.post_norms:
                o = self._norm(o, b + "post_attention_norm")
            if c.parallel_residual:
                # attention and MLP both read the layer's input (own norm where the checkpoint has one)
                if b + "ffn_norm.weight" in self.w:
                    h = self._norm(x, b + "ffn_norm")
            else:
                # residual connection back into x, then the ffn norm
                x = k.add(x, o)
                h = self._norm(x, b + "ffn_norm")
            # MLP
            if c.gated_mlp:
                gate, up = self._linear(h, b + "ffn_gate", lora), self._linear(h, b + "ffn_up", lora)
                m = self._linear(self._act_mul(gate, up), b + "ffn_down", lora)
            else:
                up = self._linear(h, b + "ffn_up", lora)
                m = self._linear(k.silu(up) if c.act == "silu" else k.gelu(up, c.act == "gelu_tanh"), b + "ffn_down",
                                 lora)
            if c.post_norms:
                m = self._norm(m, b + "post_ffw_norm")
            # residual connection
            x = k.add(k.add(x, o), m) if c.parallel_residual else k.add(x, m)

        cache.n_past = pos0 + n
        if last_only:
            x = np.ascontiguousarray(x[-1:])
        # final norm and classifier into logits
        x = self._norm(x, "output_norm")
        if c.tie_embeddings:
            emb = self.w["token_embd.weight"]
            logits = k.matmul(x, emb.data, emb.qtype)
            self.counters.weight_bytes += emb.data.nbytes
            self.counters.flops += 2 * logits.size * x.shape[-1]
        else:
            logits = self._linear(x, "output")
        if c.final_softcap > 0:
            logits = np.float32(c.final_softcap) * np.tanh(logits / np.float32(c.final_softcap))
        return logits
