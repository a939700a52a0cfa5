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
    rope_freq_scale: float = 1.0  # 1 / rope factor for "linear" scaling
    rope_freq_factors: tuple[float, ...] = ()  # rot_dim/2 divisors of the frequencies: "llama3" scaling (llama.cpp's rope_freqs)
    rope_local_theta: float = 0.0  # RoPE base of the sliding-window layers (Gemma 3's local base); 0: they use the global rope
    rope_local_freq_scale: float = 1.0  # linear scaling of the sliding-window layers' RoPE, read only when rope_local_theta is set
    # (the local layers take no rope_freq_factors then; the global settings above are the full-attention layers')
    rope_freq_factors_long: tuple[float, ...] = ()  # "longrope": long_factor (rope_freq_factors holds short_factor)
    rope_long_after: int = 0  # "longrope": original_max_position_embeddings. A forward call whose input ends past this
    # position (the whole input of the call, a prompt however it is batched) rotates by the long factors, else the short
    rope_attn_factor: float = 1.0  # multiplies the rotated part of q and k after RoPE: longrope's attention factor
    qk_norm: bool = False  # RMSNorm over each head of q and of k before RoPE (blk.N.attn_q_norm / attn_k_norm, head_dim
    # weights, with norm_w_offset): Gemma 3, Qwen3
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


# The rope settings a config may carry, by rope type: transformers 5 writes them in one
# rope_parameters object; older configs as top-level rope_theta / partial_rotary_factor and a
# rope_scaling object. Anything else there changes the maths and is refused by name.
_ROPE_KEYS = {"default": set(), "linear": {"factor"},
              "llama3": {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}}
_ROPE_COMMON = {"rope_theta", "rope_type", "type", "partial_rotary_factor"}
# rope types only some architectures implement (rope_parameters' extra_types): required keys, optional keys
_EXTRA_ROPE = {"longrope": ({"short_factor", "long_factor"}, {"factor", "attention_factor",
                                                              "original_max_position_embeddings"})}


def rope_parameters(c: dict, extra_types: tuple[str, ...] = ()) -> dict:
    """The rope settings of a config.json in transformers 5's form (one
    dict: rope_theta, rope_type, partial_rotary_factor, scaling keys), from
    either form; rope_parameters wins over the legacy top-level keys.
    extra_types: rope types of _EXTRA_ROPE the caller's architecture implements."""
    p: dict = {}
    for key in ("rope_theta", "partial_rotary_factor"):
        if c.get(key) is not None:
            p[key] = c[key]
    legacy = c.get("rope_scaling")
    if legacy is not None and not isinstance(legacy, dict):
        raise ValueError(f"rope_scaling must be an object, got {legacy!r}")
    new = c.get("rope_parameters")
    if new is not None and not isinstance(new, dict):
        raise ValueError(f"rope_parameters must be an object, got {new!r}")
    if new and all(isinstance(v, dict) for v in new.values()):  # one per layer type (Gemma-3 style)
        kinds = list(new.values())
        if any(k != kinds[0] for k in kinds):
            raise ValueError(f"rope_parameters differ by layer type ({', '.join(new)}): not supported")
        new = kinds[0]
    for src in (legacy or {}, new or {}):
        for key, value in src.items():
            if value is not None:
                p["rope_type" if key == "type" else key] = value
    p.setdefault("rope_type", "default")
    kind = p["rope_type"]
    if kind in extra_types:
        required, optional = _EXTRA_ROPE[kind]
        extra = sorted(set(p) - _ROPE_COMMON - required - optional)
        missing = sorted(required - set(p))
        if extra or missing:
            raise ValueError(f"rope type {kind!r}: " + "; ".join(
                ([f"setting(s) {', '.join(extra)} are not supported"] if extra else [])
                + ([f"needs {', '.join(missing)}"] if missing else [])))
        return p
    if kind not in _ROPE_KEYS:
        raise ValueError(f"unsupported rope type {kind!r} (rope_parameters / rope_scaling); supported: "
                         f"{', '.join(list(_ROPE_KEYS) + list(extra_types))}")
    extra = sorted(set(p) - _ROPE_COMMON - _ROPE_KEYS[kind])
    if kind == "linear":  # linear scaling is factor alone; the original length is informative only
        extra = [k for k in extra if k != "original_max_position_embeddings"]
    if extra:
        raise ValueError(f"rope setting(s) {', '.join(extra)} of rope type {kind!r} are not supported")
    missing = sorted(_ROPE_KEYS[kind] - set(p))
    if missing:
        raise ValueError(f"rope type {kind!r} needs {', '.join(missing)}")
    return p


def llama3_freq_factors(theta: float, rot_dim: int, factor: float, low_freq_factor: float,
                        high_freq_factor: float, original_max_position_embeddings: int) -> tuple[float, ...]:
    """Llama 3.1's rope scaling as per-frequency divisors (what llama.cpp's
    converter writes as the rope_freqs tensor): high frequencies keep theirs,
    low ones are divided by factor, and the band between is interpolated."""
    if not (factor > 0 and high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0):
        raise ValueError(f"llama3 rope scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0, got "
                         f"factor={factor}, low_freq_factor={low_freq_factor}, high_freq_factor={high_freq_factor}")
    old = float(original_max_position_embeddings)
    low_wavelen, high_wavelen = old / low_freq_factor, old / high_freq_factor
    out = []
    for i in range(rot_dim // 2):
        wavelen = 2.0 * math.pi * float(theta) ** (2.0 * i / rot_dim)
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(float(factor))
        else:
            smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1.0 / ((1.0 - smooth) / factor + smooth))
    return tuple(out)


def _rope(c: dict, head_dim: int, partial: bool = False) -> dict:
    """ModelConfig's rope fields of a config. partial: the architecture
    rotates partial_rotary_factor of each head (Phi, StableLM)."""
    p = rope_parameters(c)
    frac = float(p.get("partial_rotary_factor", 1.0))
    if not partial and frac != 1.0:
        raise ValueError(f"partial_rotary_factor {frac} is not supported for model_type {c.get('model_type')!r}")
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"partial_rotary_factor must be in (0, 1], got {frac}")
    rot_dim = int(frac * head_dim)
    theta = float(p.get("rope_theta", 10000.0))
    out = dict(rope_theta=theta, rot_dim=rot_dim)
    if p["rope_type"] == "linear":
        out["rope_freq_scale"] = 1.0 / float(p["factor"])
    elif p["rope_type"] == "llama3":
        out["rope_freq_factors"] = llama3_freq_factors(
            theta, rot_dim, float(p["factor"]), float(p["low_freq_factor"]), float(p["high_freq_factor"]),
            int(p["original_max_position_embeddings"]))
    return out


def refuse(c: dict, **unsupported) -> None:
    """Refuses, by name, a config key whose value changes the maths in a way
    pocketlm does not implement. unsupported: key -> predicate on its value
    that is true when the value is NOT supported."""
    for key, bad in unsupported.items():
        if key in c and c[key] is not None and bad(c[key]):
            raise ValueError(f"config {key}={c[key]!r} is not supported for model_type {c.get('model_type')!r}")


def _true(v) -> bool:
    return bool(v)


def _llama_like(c: dict, partial: bool = False, **over) -> ModelConfig:
    refuse(c, use_bidirectional_attention=_true)
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
        **_rope(c, head_dim, partial),
        qkv_bias=bool(c.get("attention_bias", False)),
        o_bias=bool(c.get("attention_bias", False)),
        mlp_bias=bool(c.get("mlp_bias", False)),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        query_scale=head_dim**-0.5,
        bos_token_id=c.get("bos_token_id"),
        eos_token_ids=_eos(c.get("eos_token_id")),
    )
    if c.get("model_type") == "mistral" and c.get("sliding_window"):  # Mistral's window applies to every layer
        base.update(sliding_window=int(c["sliding_window"]), sliding_window_layers=tuple(range(c["num_hidden_layers"])))
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


def _window_layers(c: dict) -> dict:
    """Qwen2 / Qwen3's sliding window as transformers applies it: only when
    use_sliding_window is set, on the layers layer_types names
    "sliding_attention" (by default those from max_window_layers on)."""
    n = c["num_hidden_layers"]
    if not c.get("use_sliding_window") or not c.get("sliding_window"):
        return {}
    types = c.get("layer_types") or ["sliding_attention" if i >= c.get("max_window_layers", 28) else "full_attention"
                                     for i in range(n)]
    return dict(sliding_window=int(c["sliding_window"]), sliding_window_layers=_layer_types(c, types))


def _layer_types(c: dict, types) -> tuple[int, ...]:
    """The indices of the sliding-attention layers of a layer_types list (others must be full_attention)."""
    if not isinstance(types, list) or len(types) != c["num_hidden_layers"]:
        raise ValueError(f"layer_types must list one type per layer ({c['num_hidden_layers']}), got {types!r}")
    bad = sorted({t for t in types if t not in ("sliding_attention", "full_attention")})
    if bad:
        raise ValueError(f"config layer_types {', '.join(map(repr, bad))} are not supported for model_type "
                         f"{c.get('model_type')!r} (sliding_attention, full_attention)")
    return tuple(i for i, t in enumerate(types) if t == "sliding_attention")


def _qwen2(c: dict) -> ModelConfig:
    # Qwen2's q/k/v projections always carry biases, its output projection none
    return _llama_like(c, qkv_bias=True, o_bias=False, **_window_layers(c))


def _qwen3(c: dict) -> ModelConfig:
    return _llama_like(c, qk_norm=True, **_window_layers(c))


def _gemma3_text(c: dict) -> dict:
    """The text model's config of a Gemma 3 checkpoint: gemma3_text as it
    is, or a multimodal gemma3's text_config (its vision tower is not
    run: pocketlm takes text in only)."""
    if c.get("model_type") != "gemma3":
        return c
    text = c.get("text_config")
    if not isinstance(text, dict):
        raise ValueError("a gemma3 config needs a text_config object (the language model's settings)")
    out = dict(text)
    out["model_type"] = "gemma3"
    for key in ("bos_token_id", "eos_token_id", "tie_word_embeddings"):
        if out.get(key) is None and c.get(key) is not None:
            out[key] = c[key]
    return out


def _gemma3_rope(c: dict, head_dim: int) -> dict:
    """Gemma 3's two RoPEs: full-attention layers on rope_theta (1e6 by
    default, linear scaling where set), sliding ones on the local base
    (rope_local_base_freq, 1e4 by default), from transformers 5's
    rope_parameters per layer type or the older top-level keys."""
    rp = c.get("rope_parameters")
    mt = c.get("model_type")
    if isinstance(rp, dict) and rp and all(v is None or isinstance(v, dict) for v in rp.values()):
        unknown = sorted(set(rp) - {"full_attention", "sliding_attention"})
        if unknown:
            raise ValueError(f"rope_parameters for layer type(s) {', '.join(unknown)} are not supported for "
                             f"model_type {mt!r}")
        full = {"model_type": mt, "rope_parameters": {"rope_theta": 1_000_000.0, **(rp.get("full_attention") or {})}}
        local = {"model_type": mt, "rope_parameters": {"rope_theta": float(c.get("rope_local_base_freq") or 10_000.0),
                                                       **(rp.get("sliding_attention") or {})}}
    else:
        full = {"model_type": mt, "rope_theta": c.get("rope_theta", 1_000_000.0), "rope_scaling": c.get("rope_scaling"),
                "rope_parameters": rp}
        local = {"model_type": mt, "rope_theta": c.get("rope_local_base_freq", 10_000.0)}
    g, loc = _rope(full, head_dim), _rope(local, head_dim)
    if "rope_freq_factors" in loc:
        raise ValueError(f"rope type llama3 on the sliding-attention layers is not supported for model_type {mt!r}")
    return dict(g, rope_local_theta=loc["rope_theta"], rope_local_freq_scale=loc.get("rope_freq_scale", 1.0))


def _gemma3(c: dict) -> ModelConfig:
    c = _gemma3_text(c)
    # transformers' Gemma 3 attention takes no soft-cap (and llama.cpp's converter asserts there is none): a
    # value here would mean maths neither of them runs
    refuse(c, use_bidirectional_attention=_true, attn_logit_softcapping=_true)
    n, head_dim = c["num_hidden_layers"], c.get("head_dim") or 256
    types = c.get("layer_types") or ["sliding_attention" if (i + 1) % int(c.get("sliding_window_pattern") or 6)
                                     else "full_attention" for i in range(n)]
    sliding = _layer_types(c, types)
    window = c.get("sliding_window", 4096)
    if sliding and not window:
        raise ValueError(f"config sliding_window={window!r} is not supported for model_type {c['model_type']!r}: "
                         "its sliding_attention layers need a window")
    rope = _gemma3_rope(c, head_dim)
    act = c.get("hidden_activation") or c.get("hidden_act") or "gelu_pytorch_tanh"
    return _llama_like(
        {**c, "model_type": "gemma3", "rope_parameters": None, "rope_scaling": None, "rope_theta": None},
        norm_w_offset=1.0, act=_act(act),
        embed_scale=math.sqrt(c["hidden_size"]), tie_embeddings=bool(c.get("tie_word_embeddings", True)),
        head_dim=head_dim, query_scale=float(c.get("query_pre_attn_scalar", 256)) ** -0.5,
        final_softcap=float(c.get("final_logit_softcapping") or 0.0),
        sliding_window=int(window or 0), sliding_window_layers=sliding, post_norms=True, qk_norm=True, **rope)


def _phi3_rope(c: dict, head_dim: int) -> dict:
    """Phi-3's rope: default, or longrope (short and long factors, chosen by
    sequence length against original_max_position_embeddings, and the
    attention factor), as transformers' _compute_longrope_parameters."""
    c = dict(c)
    for key in ("rope_scaling", "rope_parameters"):  # "su" and "yarn": Phi-3's first configs' names for longrope
        v = c.get(key)
        if isinstance(v, dict) and (v.get("rope_type") or v.get("type")) in ("su", "yarn"):
            c[key] = {**{k: x for k, x in v.items() if k != "type"}, "rope_type": "longrope"}
    p = rope_parameters(c, extra_types=("longrope",))
    if p["rope_type"] not in ("default", "longrope"):
        raise ValueError(f"rope type {p['rope_type']!r} is not supported for model_type 'phi3' (default, longrope)")
    base = _rope({**c, "rope_parameters": {k: v for k, v in p.items() if k in _ROPE_COMMON} | {"rope_type": "default"},
                  "rope_scaling": None}, head_dim, partial=True)
    if p["rope_type"] == "default":
        return base
    half = base["rot_dim"] // 2
    short, long_ = p["short_factor"], p["long_factor"]
    for key, v in (("short_factor", short), ("long_factor", long_)):
        if not (isinstance(v, list) and len(v) == half and all(isinstance(x, (int, float)) and x > 0 for x in v)):
            raise ValueError(f"longrope {key} must list {half} positive numbers (half the rotated dims), got {v!r}")
    # Phi-3 keeps the pretraining length at the top level, which wins (transformers' standardize_rope_params)
    original = int(c.get("original_max_position_embeddings") or p.get("original_max_position_embeddings")
                   or c.get("max_position_embeddings", 4096))
    factor = p.get("factor")
    if factor is None:
        factor = c.get("max_position_embeddings", 4096) / original
    attn = p.get("attention_factor")
    if attn is None:
        attn = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    return dict(base, rope_freq_factors=tuple(float(x) for x in short),
                rope_freq_factors_long=tuple(float(x) for x in long_), rope_long_after=original,
                rope_attn_factor=float(attn))


def _phi3(c: dict) -> ModelConfig:
    n_heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // n_heads
    window = int(c.get("sliding_window") or 0)
    return _llama_like({**c, "rope_parameters": None, "rope_scaling": None, "rope_theta": None,
                        "partial_rotary_factor": None}, **_phi3_rope(c, head_dim),
                       sliding_window=window, sliding_window_layers=tuple(range(c["num_hidden_layers"])) if window else ())


def _phi(c: dict) -> ModelConfig:
    refuse(c, qk_layernorm=_true)
    return _llama_like(c, partial=True, norm="layer", norm_eps=c.get("layer_norm_eps", 1e-5),
                       act=_act(c.get("hidden_act", "gelu_new")), gated_mlp=False, qkv_bias=True, o_bias=True, mlp_bias=True,
                       parallel_residual=True, output_bias=True)


def _stablelm(c: dict) -> ModelConfig:
    refuse(c, qk_layernorm=_true)
    return _llama_like(c, partial=True, norm="layer", norm_eps=c.get("layer_norm_eps", 1e-5),
                       qkv_bias=bool(c.get("use_qkv_bias", False)), o_bias=False,
                       parallel_residual=bool(c.get("use_parallel_residual", False)))


def _gpt2(c: dict) -> ModelConfig:
    refuse(c, scale_attn_by_inverse_layer_idx=_true, add_cross_attention=_true)
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
    rope = dict(rope_theta=10000.0, rot_dim=0) if alibi else _rope(c, hd)
    return ModelConfig(
        arch="falcon", vocab_size=c["vocab_size"], hidden_size=h, n_layers=c["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=n_kv, head_dim=hd, intermediate_size=c.get("ffn_hidden_size") or 4 * h,
        max_position_embeddings=c.get("max_position_embeddings", 2048), norm_eps=c.get("layer_norm_epsilon", 1e-5),
        norm="layer", act=_act(c.get("activation", "gelu")), gated_mlp=False, **rope, qkv_bias=bias, o_bias=bias, mlp_bias=bias,
        tie_embeddings=bool(c.get("tie_word_embeddings", True)), query_scale=hd**-0.5,
        parallel_residual=bool(c.get("parallel_attn", True)) or bool(c.get("new_decoder_architecture")),
        positions="alibi" if alibi else "rope", bos_token_id=c.get("bos_token_id"),
        eos_token_ids=_eos(c.get("eos_token_id")))


ARCHITECTURES = {"llama": _llama_like, "mistral": _llama_like, "gemma": _gemma, "gemma2": _gemma2, "phi": _phi,
                 "stablelm": _stablelm, "gpt2": _gpt2, "falcon": _falcon, "gemma3_text": _gemma3, "gemma3": _gemma3,
                 "qwen2": _qwen2, "qwen3": _qwen3, "phi3": _phi3}


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
    from ..errors import reading

    with reading(p, "config.json"):
        c = json.loads(p.read_bytes().decode("utf-8"))
        if not isinstance(c, dict):
            raise ValueError("not a JSON object")
        try:
            return config_from_dict(c)
        except (KeyError, TypeError) as e:
            raise ValueError(f"missing or mistyped key ({type(e).__name__}: {e})") from None
