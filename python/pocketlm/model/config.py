"""ModelConfig: every architectural difference between the supported
checkpoints, read from a Hugging Face config.json.

The forward pass branches only on these fields; an architecture is a
function here that maps its config keys onto them (plus a tensor-name
mapping in checkpoint.py). Unknown model types are a clear error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelConfig:
    arch: str  # model_type
    vocab_size: int  # vocab_size
    hidden_size: int  # hidden_size
    n_layers: int  # num_hidden_layers
    n_heads: int  # num_attention_heads
    n_kv_heads: int  # num_key_value_heads (defaults to num_attention_heads)
    head_dim: int  # head_dim (defaults to hidden_size // num_attention_heads)
    intermediate_size: int  # intermediate_size
    max_position_embeddings: int  # max_position_embeddings
    norm_eps: float  # rms_norm_eps / layer_norm_eps
    norm: str = "rms"  # "rms" (RMSNorm) or "layer" (LayerNorm)
    norm_w_offset: float = 0.0  # 1.0 where the norm scales by (1 + weight): Gemma
    act: str = "silu"  # hidden_act / hidden_activation: "silu", "gelu" (erf) or "gelu_tanh"
    gated_mlp: bool = True  # down(act(gate(x)) * up(x)) rather than fc2(act(fc1(x)))
    rope_theta: float = 10000.0  # rope_theta
    rot_dim: int = 0  # rotated dims per head: partial_rotary_factor * head_dim
    rope_mode: str = "neox"  # pairing of rotated values: "neox" (rotate_half) or "gptj"
    rope_freq_scale: float = 1.0  # 1 / rope_scaling["factor"] for "linear" scaling
    qkv_bias: bool = False  # attention_bias (q/k/v projections)
    o_bias: bool = False  # attention_bias (output projection)
    mlp_bias: bool = False  # mlp_bias
    tie_embeddings: bool = False  # tie_word_embeddings: lm_head reuses the embedding table
    embed_scale: float = 1.0  # embeddings multiplied by this: sqrt(hidden_size) for Gemma
    query_scale: float = 0.0  # attention score scale: 1/sqrt(head_dim), or query_pre_attn_scalar**-0.5
    attn_softcap: float = 0.0  # attn_logit_softcapping (Gemma-2)
    final_softcap: float = 0.0  # final_logit_softcapping (Gemma-2)
    sliding_window: int = 0  # sliding_window (0 = none)
    sliding_window_layers: tuple[int, ...] = ()  # layers that use the window
    post_norms: bool = False  # extra norms after attention and MLP outputs (Gemma-2)
    parallel_residual: bool = False  # x + attn(norm(x)) + mlp(norm(x)): Phi, Falcon parallel_attn, use_parallel_residual
    positions: str = "rope"  # "rope", "learned" (GPT-2's wpe) or "alibi" (Falcon-RW alibi)
    output_bias: bool = False  # the classifier has a bias: Phi
    bos_token_id: int | None = None  # bos_token_id
    eos_token_ids: tuple[int, ...] = field(default=())  # eos_token_id (one or a list)

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim


_ACTS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh",
         "gelu_fast": "gelu_tanh"}


def _act(name: str) -> str:
    if name not in _ACTS:
        raise ValueError(f"unsupported activation {name!r}; supported: {', '.join(sorted(_ACTS))}")
    return _ACTS[name]


def _eos(v) -> tuple[int, ...]:
    if v is None:
        return ()
    return tuple(int(x) for x in v) if isinstance(v, (list, tuple)) else (int(v),)


def _rope_freq_scale(c: dict) -> float:
    rs = c.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind in ("default", None):
        return 1.0
    if kind == "linear":
        return 1.0 / float(rs["factor"])
    raise ValueError(f"unsupported rope_scaling type {kind!r}; supported: linear")


def _llama_like(c: dict, **over) -> ModelConfig:
    n_heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // n_heads
    base = dict(
        arch=c["model_type"],
        vocab_size=c["vocab_size"],
        hidden_size=c["hidden_size"],
        n_layers=c["num_hidden_layers"],
        n_heads=n_heads,
        n_kv_heads=c.get("num_key_value_heads") or n_heads,
        head_dim=head_dim,
        intermediate_size=c["intermediate_size"],
        max_position_embeddings=c.get("max_position_embeddings", 2048),
        norm_eps=c.get("rms_norm_eps", 1e-6),
        act=_act(c.get("hidden_act", "silu")),
        rope_theta=float(c.get("rope_theta", 10000.0)),
        rot_dim=head_dim,
        rope_freq_scale=_rope_freq_scale(c),
        qkv_bias=bool(c.get("attention_bias", False)),
        o_bias=bool(c.get("attention_bias", False)),
        mlp_bias=bool(c.get("mlp_bias", False)),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        query_scale=head_dim**-0.5,
        bos_token_id=c.get("bos_token_id"),
        eos_token_ids=_eos(c.get("eos_token_id")),
    )
    base.update(over)
    return ModelConfig(**base)


def _gemma(c: dict) -> ModelConfig:
    act = c.get("hidden_activation") or c.get("hidden_act") or "gelu_pytorch_tanh"
    return _llama_like(c, norm_w_offset=1.0, act=_act(act), embed_scale=math.sqrt(c["hidden_size"]),
                       tie_embeddings=bool(c.get("tie_word_embeddings", True)))


def _gemma2(c: dict) -> ModelConfig:
    cfg = _gemma(c)
    n = c["num_hidden_layers"]
    window = int(c.get("sliding_window") or 0)
    layer_types = c.get("layer_types")
    if layer_types:
        sliding = tuple(i for i, t in enumerate(layer_types) if t == "sliding_attention")
    else:  # Gemma-2 alternates: even layers are local (sliding), odd ones global
        sliding = tuple(range(0, n, 2))
    from dataclasses import replace

    return replace(
        cfg,
        query_scale=float(c.get("query_pre_attn_scalar", cfg.head_dim)) ** -0.5,
        attn_softcap=float(c.get("attn_logit_softcapping") or 0.0),
        final_softcap=float(c.get("final_logit_softcapping") or 0.0),
        sliding_window=window,
        sliding_window_layers=sliding if window else (),
        post_norms=True,
    )


def _rotary(c: dict, head_dim: int) -> int:
    return int(float(c.get("partial_rotary_factor", 1.0)) * head_dim)


def _phi(c: dict) -> ModelConfig:
    hd = c["hidden_size"] // c["num_attention_heads"]
    if c.get("qk_layernorm"):
        raise ValueError("phi checkpoints with qk_layernorm are not supported")
    return _llama_like(c, norm="layer", norm_eps=c.get("layer_norm_eps", 1e-5), act=_act(c.get("hidden_act", "gelu_new")),
                       gated_mlp=False, rot_dim=_rotary(c, hd), qkv_bias=True, o_bias=True, mlp_bias=True,
                       parallel_residual=True, output_bias=True)


def _stablelm(c: dict) -> ModelConfig:
    hd = c["hidden_size"] // c["num_attention_heads"]
    if c.get("qk_layernorm"):
        raise ValueError("stablelm checkpoints with qk_layernorm are not supported")
    return _llama_like(c, norm="layer", norm_eps=c.get("layer_norm_eps", 1e-5), rot_dim=_rotary(c, hd),
                       qkv_bias=bool(c.get("use_qkv_bias", False)), o_bias=False,
                       parallel_residual=bool(c.get("use_parallel_residual", False)))


def _gpt2(c: dict) -> ModelConfig:
    h, n_heads = c["n_embd"], c["n_head"]
    return ModelConfig(
        arch="gpt2", vocab_size=c["vocab_size"], hidden_size=h, n_layers=c["n_layer"], n_heads=n_heads,
        n_kv_heads=n_heads, head_dim=h // n_heads, intermediate_size=c.get("n_inner") or 4 * h,
        max_position_embeddings=c.get("n_positions", 1024), norm_eps=c.get("layer_norm_epsilon", 1e-5), norm="layer",
        act=_act(c.get("activation_function", "gelu_new")), gated_mlp=False, rot_dim=0, qkv_bias=True, o_bias=True,
        mlp_bias=True, tie_embeddings=True, query_scale=(h // n_heads) ** -0.5 if c.get("scale_attn_weights", True) else 1.0,
        positions="learned", bos_token_id=c.get("bos_token_id"), eos_token_ids=_eos(c.get("eos_token_id")))


def _falcon(c: dict) -> ModelConfig:
    h, n_heads = c["hidden_size"], c["num_attention_heads"]
    hd = h // n_heads
    if c.get("new_decoder_architecture"):
        n_kv = c.get("num_kv_heads") or n_heads
    else:
        n_kv = 1 if c.get("multi_query", True) else n_heads
    alibi = bool(c.get("alibi", False))
    bias = bool(c.get("bias", False))
    return ModelConfig(
        arch="falcon", vocab_size=c["vocab_size"], hidden_size=h, n_layers=c["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=n_kv, head_dim=hd, intermediate_size=c.get("ffn_hidden_size") or 4 * h,
        max_position_embeddings=c.get("max_position_embeddings", 2048), norm_eps=c.get("layer_norm_epsilon", 1e-5),
        norm="layer", act="gelu", gated_mlp=False, rope_theta=float(c.get("rope_theta", 10000.0)),
        rot_dim=0 if alibi else hd, qkv_bias=bias, o_bias=bias, mlp_bias=bias,
        tie_embeddings=bool(c.get("tie_word_embeddings", True)), query_scale=hd**-0.5,
        parallel_residual=bool(c.get("parallel_attn", True)) or bool(c.get("new_decoder_architecture")),
        positions="alibi" if alibi else "rope", bos_token_id=c.get("bos_token_id"),
        eos_token_ids=_eos(c.get("eos_token_id")))


ARCHITECTURES = {"llama": _llama_like, "mistral": _llama_like, "gemma": _gemma, "gemma2": _gemma2, "phi": _phi,
                 "stablelm": _stablelm, "gpt2": _gpt2, "falcon": _falcon}


def config_from_dict(c: dict) -> ModelConfig:
    model_type = c.get("model_type")
    if model_type not in ARCHITECTURES:
        raise ValueError(f"unsupported model_type {model_type!r}; supported: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[model_type](c)


def load_config(path: str | Path) -> ModelConfig:
    """Reads config.json from a checkpoint folder (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise FileNotFoundError(f"no config.json at {p}")
    return config_from_dict(json.loads(p.read_text()))
