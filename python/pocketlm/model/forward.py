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

# the Python engine prefills in batches of at most this many tokens (the C engine's PLM_DEFAULT_BATCH,
# native/src/engine/session.c, which says why 256): it bounds a forward pass's activation memory, whatever the
# prompt length
PREFILL_CHUNK = 256


def kv_lengths(cfg: ModelConfig, n_ctx: int) -> tuple[int, ...]:
    """Positions each layer's cache holds for a context of n_ctx: a
    sliding-window layer keeps a ring of its window (it never looks further
    back), every other layer all n_ctx."""
    return tuple(min(cfg.sliding_window, n_ctx) if cfg.sliding_window and i in cfg.sliding_window_layers else n_ctx
                 for i in range(cfg.n_layers))


class KVCache:
    """Keys and values of every layer for up to n_ctx positions, F32 or F16
    (F16: values rounded to half on the way in and read back as F32, as the C
    engine and llama.cpp keep them). A sliding-window layer holds a ring
    buffer of its window: position p in slot p % window."""

    def __init__(self, cfg: ModelConfig, n_ctx: int, kv_type: str = "F32"):
        if kv_type not in KV_TYPES:
            raise ValueError(f"the KV cache is kept as F32 or F16, not {kv_type!r}")
        self.lengths = kv_lengths(cfg, n_ctx)  # positions held per layer
        self.k = [np.zeros((n, cfg.n_kv_heads, cfg.head_dim), dtype=KV_TYPES[kv_type]) for n in self.lengths]
        self.v = [np.zeros((n, cfg.n_kv_heads, cfg.head_dim), dtype=KV_TYPES[kv_type]) for n in self.lengths]
        self.kv_type = kv_type
        self.itemsize = np.dtype(KV_TYPES[kv_type]).itemsize
        self.n_ctx = n_ctx
        self.n_past = 0  # positions filled so far

    def is_ring(self, layer: int) -> bool:
        return self.lengths[layer] < self.n_ctx

    def layer(self, layer: int, n_kv: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and values of positions 0 .. n_kv-1 of a (non-ring) layer, as F32."""
        k, v = self.k[layer][:n_kv], self.v[layer][:n_kv]
        if k.dtype != np.float32:
            k, v = k.astype(np.float32), v.astype(np.float32)
        return k, v

    def write(self, layer: int, pos0: int, k: np.ndarray, v: np.ndarray) -> None:
        """Stores the keys and values of positions pos0 .. pos0+len(k)-1 (a ring keeps the last of them)."""
        n, size = k.shape[0], self.lengths[layer]
        if not self.is_ring(layer):
            self.k[layer][pos0:pos0 + n], self.v[layer][pos0:pos0 + n] = k, v
            return
        keep = min(n, size)
        slots = np.arange(pos0 + n - keep, pos0 + n) % size
        self.k[layer][slots], self.v[layer][slots] = k[n - keep:], v[n - keep:]

    def ring_past(self, layer: int, pos0: int, n_back: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and values of positions pos0-n_back .. pos0-1 of a ring layer, in position order, as F32."""
        slots = np.arange(pos0 - n_back, pos0) % self.lengths[layer]
        return self.k[layer][slots].astype(np.float32), self.v[layer][slots].astype(np.float32)

    def rounded(self, x: np.ndarray) -> np.ndarray:
        """x as the cache would give it back (rounded to half for an F16 cache)."""
        return x if self.kv_type == "F32" else x.astype(KV_TYPES[self.kv_type]).astype(np.float32)

    def copy_into(self, other: "KVCache") -> None:
        """Copies the filled positions into another cache of the same model and size (a forked session)."""
        if other.lengths != self.lengths or other.kv_type != self.kv_type:
            raise ValueError("a KV cache is copied into one of the same model, length and type")
        n = self.n_past
        for i in range(len(self.k)):
            m = self.lengths[i] if self.is_ring(i) else n
            other.k[i][:m], other.v[i][:m] = self.k[i][:m], self.v[i][:m]
        other.n_past = n


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

    def rope_factors_for(self, pos_end: int) -> np.ndarray | None:
        """The frequency divisors of a forward call whose input ends at pos_end:
        longrope's long factors past rope_long_after, else the (short) rope_freq_factors."""
        c = self.cfg
        if c.rope_freq_factors_long and pos_end > c.rope_long_after:
            return np.asarray(c.rope_freq_factors_long, dtype=np.float32)
        return self.rope_freq_factors

    def _rope(self, x: np.ndarray, positions: np.ndarray, layer: int, ff: np.ndarray | None) -> None:
        """RoPE in place on x[n, heads, head_dim] for one layer: the local base on
        sliding-window layers where the model has one, then the attention factor."""
        c = self.cfg
        if c.rope_local_theta > 0 and layer in c.sliding_window_layers:
            self.k.rope(x, positions, c.rope_local_theta, c.rot_dim, c.rope_mode, c.rope_local_freq_scale, None)
        else:
            self.k.rope(x, positions, c.rope_theta, c.rot_dim, c.rope_mode, c.rope_freq_scale, ff)
        if c.rope_attn_factor != 1.0:
            x[..., :c.rot_dim] *= np.float32(c.rope_attn_factor)

    def _head_norm(self, x: np.ndarray, name: str) -> np.ndarray:
        """RMSNorm over each head of x[n, heads, head_dim] (Gemma 3 and Qwen3's q/k norm)."""
        c = self.cfg
        return self.k.rms_norm(x.reshape(-1, c.head_dim), self.w[name + ".weight"], c.norm_eps,
                               c.norm_w_offset).reshape(x.shape)

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

    def forward(self, tokens, cache: KVCache, last_only: bool = False, lora=None, pos_end: int | None = None
                ) -> np.ndarray:
        """Runs tokens at positions cache.n_past.. and returns their logits
        [n, vocab] (only the last position's, [1, vocab], when last_only:
        what generation needs, without the classifier over the whole prompt).
        lora: a LoraAdapter (model/lora.py) applied unmerged to the weights it adapts.
        pos_end: where the whole input these tokens are a batch of ends (a
        prompt prefilled in batches), which picks longrope's factors; by
        default the end of these tokens."""
        c, k = self.cfg, self.k
        tokens = np.asarray(tokens, dtype=np.int32).reshape(-1)
        n, pos0 = tokens.size, cache.n_past
        if pos0 + n > cache.n_ctx:
            raise ValueError(f"{pos0 + n} positions do not fit the cache's {cache.n_ctx}")
        positions = np.arange(pos0, pos0 + n, dtype=np.int32)
        ff = self.rope_factors_for(pos0 + n if pos_end is None else max(pos_end, pos0 + n))  # once a pass

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
            # per-head q/k norm
            if c.qk_norm:
                q, kk = self._head_norm(q, b + "attn_q_norm"), self._head_norm(kk, b + "attn_k_norm")
            # rotary position embedding
            if c.rot_dim:
                self._rope(q, positions, layer, ff)
                self._rope(kk, positions, layer, ff)
            window = c.sliding_window if layer in c.sliding_window_layers else 0
            if cache.is_ring(layer):
                # a window's ring: the past it still holds that these queries see, then this batch's own keys
                # (as the cache gives them back), so a batch longer than the ring attends exactly
                back = min(pos0, window - 1)
                kp, vp = cache.ring_past(layer, pos0, back)
                kc, vc = np.concatenate([kp, cache.rounded(kk)]), np.concatenate([vp, cache.rounded(v)])
                cache.write(layer, pos0, kk, v)
                n_kv, q_pos0 = back + n, back
            else:
                # write keys and values into the cache
                cache.write(layer, pos0, kk, v)
                n_kv, q_pos0 = pos0 + n, pos0
                kc, vc = cache.layer(layer, n_kv)
            # causal attention over the cache
            att = k.attention(q, kc, vc, n_kv, q_pos0, c.query_scale, c.attn_softcap, window, self.alibi_slopes)
            self.counters.kv_bytes += 2 * n_kv * c.n_kv_heads * c.head_dim * cache.itemsize
            self.counters.flops += 4 * n * n_kv * c.q_dim  # scores and weighted values (upper bound)
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
