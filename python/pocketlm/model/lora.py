"""LoRA adapters: read from a PEFT folder or file, or from a GGUF LoRA adapter
(llama.cpp's format, which pocketlm's converter writes too), checked against
the base model and held as F32 pairs that both engines apply unmerged:

    y = x W^T + b + s * (x A^T) B^T

with A [r, k] and B [n, r] in PEFT's layout (lora_A.weight, lora_B.weight;
GGUF's lora_a / lora_b hold the same arrays) and s the module's scale
(lora_alpha / r, or lora_alpha / sqrt(r) for rsLoRA). The scale is folded
into B when the adapter is read, so a pair is all a forward pass needs.

Names: an adapter's targets are mapped onto the canonical tensor names
(blk.N.attn_q.weight, ...) with the base architecture's own name map
(checkpoint.NAME_MAPS), so every module PEFT can wrap in a supported
architecture is found the way the checkpoint's own weights are.

Layouts: pocketlm's model files and llama.cpp's keep Llama's q/k rows
permuted for adjacent-pair rotary, and GGUF adapters are written for that
layout (llama.cpp's convert_lora_to_gguf.py permutes lora_b's rows as it
permutes the base weight). A PEFT adapter is in Hugging Face's layout. Each
pair is moved to the layout of the weights it is applied to; a fused
attn_qkv target is split into q, k and v pairs that share A, a fused gate/up
(Phi-3's gate_up_proj, llama.cpp's phi3 ffn_up) into gate and up pairs.

What is refused, by name: adapter settings that change the maths and are not
implemented (DoRA, LoRA biases, modules_to_save, layer replication, ...), a
target module pocketlm does not apply LoRA to (embeddings, the classifier,
norms), and a tensor whose shape does not fit the base model.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from .config import ModelConfig

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# the weights LoRA is applied to: the attention and MLP projections
TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
# fused targets, split onto those: q/k/v (GPT-2, Falcon, Phi-3's qkv_proj) and gate/up (Phi-3's gate_up_proj)
_FUSED_TARGETS = ("attn_qkv", "ffn_gate_up")

# adapter_config.json keys that change nothing at inference (training, initialisation, bookkeeping)
_HARMLESS = {
    "task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode",
    "r", "target_modules", "exclude_modules", "lora_alpha", "lora_dropout", "fan_in_fan_out", "use_rslora",
    "init_lora_weights", "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern", "megatron_config",
    "megatron_core", "loftq_config", "eva_config", "corda_config", "lora_ga_config", "qalora_group_size",
    "runtime_config", "ensure_weight_tying",
}
# keys that change the maths when set, and what they are
_REFUSED = {
    "use_dora": "DoRA (weight-decomposed LoRA)",
    "bias": "trained biases",
    "lora_bias": "a bias on lora_B",
    "modules_to_save": "whole modules saved beside the adapter",
    "trainable_token_indices": "trained token embeddings",
    "layer_replication": "replicated layers",
    "target_parameters": "LoRA on parameters rather than modules",
    "use_qalora": "QA-LoRA",
    "alora_invocation_tokens": "activated LoRA (aLoRA)",
    "use_bdlora": "block-diagonal LoRA",
    "arrow_config": "Arrow adapter routing",
    "kasa_config": "KaSA",
    "velora_config": "VeLoRA",
    "monteclora_config": "MonteCLoRA",
}


@dataclass
class LoraPair:
    """One adapted weight: A [r, k] and B [n, r] (the module's scale folded in), F32."""

    a: np.ndarray
    b: np.ndarray

    @property
    def rank(self) -> int:
        return self.a.shape[0]


@dataclass
class LoraAdapter:
    path: str
    source: str  # "peft" or "gguf"
    pairs: dict[str, LoraPair]  # canonical weight name (blk.N.attn_q.weight) -> its pair
    alpha: float = 0.0  # GGUF's adapter.lora.alpha for it: llama.cpp scales each pair by alpha / rank (0: by 1)
    native: object = field(default=None, repr=False)  # the C engine's copy (engine.native.NativeLora), when loaded
    held: int = 0  # bytes counted against a device budget for it

    @property
    def ranks(self) -> list[int]:
        return sorted({p.rank for p in self.pairs.values()})

    @property
    def rank(self) -> int:
        return max(self.ranks)

    @property
    def nbytes(self) -> int:
        return sum(p.a.nbytes + p.b.nbytes for p in self.pairs.values())

    @property
    def targets(self) -> list[str]:
        """The kinds of weights adapted (attn_q, ffn_down, ...)."""
        return sorted({n.split(".")[2] for n in self.pairs})

    def check_ranks(self, supported, what: str = "supportedLoraRanks") -> None:
        """Refuses an adapter whose ranks are not all among supported (empty: any)."""
        supported = list(supported or ())
        bad = [r for r in self.ranks if r not in supported]
        if supported and bad:
            raise ValueError(f"{self.path}: the adapter has rank {bad[0]}, which is not among {what} {supported}")

    def describe(self) -> str:
        ranks = "/".join(str(r) for r in self.ranks)
        layers = len({n.split(".")[1] for n in self.pairs})
        return (f"LoRA adapter {Path(self.path).name}: rank {ranks}, {len(self.pairs)} weights in {layers} layers "
                f"({', '.join(self.targets)}), {self.nbytes / 2**20:.2f} MiB")


def is_lora_path(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / ADAPTER_CONFIG).is_file()


def load_adapter(path: str | Path, cfg: ModelConfig, model_layout: str | None = None) -> LoraAdapter:
    """The adapter at path (a PEFT folder, its adapter_model.safetensors, or a
    GGUF LoRA adapter), checked against the base model's config and laid out
    for its weights: model_layout "llama.cpp" (a GGUF model file's) or "hf"
    (a checkpoint folder loaded as it is); None: as the config implies."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"loraPath {p}: no such file or folder")
    layout = model_layout or model_weight_layout(cfg)
    if p.is_file():
        with open(p, "rb") as f:
            magic = f.read(4)
        if magic == b"GGUF":
            return _from_gguf(p, cfg, layout)
    return _from_peft(p, cfg, layout)


def model_weight_layout(cfg: ModelConfig) -> str:
    """"llama.cpp" when the model's Llama q/k rows are permuted for adjacent-pair rotary, else "hf"."""
    return "llama.cpp" if cfg.arch in ("llama", "mistral") and cfg.rope_mode == "gptj" else "hf"


# ---- PEFT -----------------------------------------------------------------------------


def _peft_files(p: Path) -> tuple[Path, Path]:
    """(adapter_config.json, weights file) of a PEFT folder or of a weights file in one."""
    if p.is_dir():
        conf = p / ADAPTER_CONFIG
        weights = next((p / f for f in ADAPTER_FILES if (p / f).is_file()), None)
        if weights is None:
            raise ModelFileError(f"{p}: a PEFT adapter folder holds {' or '.join(ADAPTER_FILES)}; this one has neither")
    else:
        conf, weights = p.parent / ADAPTER_CONFIG, p
    if not conf.is_file():
        raise ModelFileError(f"{p}: no {ADAPTER_CONFIG} beside the adapter weights: its r and lora_alpha set the "
                             "adapter's scale, so it is needed")
    return conf, weights


def read_adapter_config(conf: Path) -> dict:
    """adapter_config.json, with every setting that changes the maths and that
    pocketlm does not implement refused by name."""
    try:
        c = json.loads(conf.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{conf}: not a readable adapter config ({type(e).__name__}: {e})") from None
    if not isinstance(c, dict):
        raise ModelFileError(f"{conf}: an adapter config is a JSON object")
    kind = str(c.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        raise ModelFileError(f"{conf}: peft_type {c.get('peft_type')!r}: pocketlm runs LoRA adapters only")
    for key, what in _REFUSED.items():
        value = c.get(key)
        if key == "bias" and value in (None, "none"):
            continue
        if value not in (None, False, [], {}, ""):
            raise ModelFileError(f"{conf}: {key}={value!r} ({what}) changes the model's output and is not "
                                 "implemented by pocketlm")
    for key, value in c.items():
        if key not in _HARMLESS and key not in _REFUSED and value not in (None, False, [], {}, "", 0):
            raise ModelFileError(f"{conf}: {key}={value!r} is an adapter setting pocketlm does not know; it may "
                                 "change the output, so the adapter is refused")
    for key in ("r", "lora_alpha"):
        v = c.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ModelFileError(f"{conf}: {key} must be a positive number, got {v!r}")
    for key in ("rank_pattern", "alpha_pattern"):
        if not isinstance(c.get(key) or {}, dict):
            raise ModelFileError(f"{conf}: {key} must be an object of module patterns")
    return c


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's rank_pattern / alpha_pattern lookup: the first key that is the
    module's name or matches a suffix of it."""
    for key, value in patterns.items():
        if key == module or re.fullmatch(rf"(?:.*\.)?(?:{key})", module):
            return value
    return default


def _read_peft_tensors(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".bin":
        from .torch_bin import read_torch_bin

        return read_torch_bin(path)
    from .checkpoint import read_safetensors

    return read_safetensors(path)


_PEFT_TENSOR = re.compile(r"(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[A-Za-z0-9_-]+)?\.weight\Z")


def _from_peft(p: Path, cfg: ModelConfig, layout: str) -> LoraAdapter:
    from .checkpoint import NAME_MAPS, text_model_name

    conf_path, weights_path = _peft_files(p)
    conf = read_adapter_config(conf_path)
    tensors = _read_peft_tensors(weights_path)
    halves: dict[str, dict[str, tuple[str, np.ndarray]]] = {}
    others = []
    for name, arr in tensors.items():
        m = _PEFT_TENSOR.match(name)
        if m is None:
            others.append(name)
        else:
            halves.setdefault(m.group(1), {})[m.group(2)] = (name, arr)
    if not halves:
        raise ModelFileError(f"{weights_path}: the adapter holds no lora_A / lora_B weights")
    rules = [(re.compile(pat + r"\Z"), rep) for pat, rep in NAME_MAPS[cfg.arch]]
    rank_pattern, alpha_pattern = conf.get("rank_pattern") or {}, conf.get("alpha_pattern") or {}
    pairs: dict[str, LoraPair] = {}
    for module, ab in sorted(halves.items()):
        if set(ab) != {"A", "B"}:
            have = next(iter(ab.values()))[0]
            raise ModelFileError(f"{weights_path}: {have} has no lora_{'B' if 'A' in ab else 'A'} partner")
        weight = text_model_name(module + ".weight", cfg.arch)
        canonical = next((pat.sub(rep, weight) for pat, rep in rules if pat.match(weight)), None)
        kind = canonical.split(".")[-2] if canonical else None
        if kind not in TARGETS + _FUSED_TARGETS:
            raise ModelFileError(f"{weights_path}: target module {module} ({canonical or 'not a weight of a ' + cfg.arch + ' model'}"
                                 f") is not supported: pocketlm applies LoRA to the attention and MLP projections "
                                 f"({', '.join(TARGETS)})")
        (a_name, a), (b_name, b) = ab["A"], ab["B"]
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ModelFileError(f"{weights_path}: {a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)} are not a "
                                 "LoRA pair (lora_A [r, in], lora_B [out, r])")
        r = a.shape[0]
        r_conf = _pattern_value(rank_pattern, module, conf["r"])
        if r != r_conf:
            raise ModelFileError(f"{weights_path}: {a_name} has rank {r}, but {conf_path.name} gives {module} "
                                 f"rank {r_conf}")
        alpha = float(_pattern_value(alpha_pattern, module, conf["lora_alpha"]))
        scale = alpha / math.sqrt(r) if conf.get("use_rslora") else alpha / r
        b = b * np.float32(scale)
        for target, pair in _split_target(canonical, a, b, cfg).items():
            pairs[target] = _check_fit(target, pair, cfg, f"{a_name} {tuple(a.shape)} / {b_name} {tuple(b.shape)}",
                                       weights_path)
    alpha = float(conf["lora_alpha"]) * (math.sqrt(conf["r"]) if conf.get("use_rslora") else 1.0)
    for name in others:  # after the pairs, whose refusal names the target module
        what = ("an embedding LoRA" if "lora_embedding" in name else "DoRA's magnitude vector"
                if "lora_magnitude" in name else "a base model weight saved with the adapter, which would replace the "
                "model's own" if ".base_layer." in name or not name.startswith("base_model.") or ".lora_" not in name
                else "a LoRA bias" if ".bias" in name else "not a lora_A / lora_B weight")
        raise ModelFileError(f"{weights_path}: tensor {name} ({what}) is not something pocketlm applies")
    return LoraAdapter(str(p), "peft", {t: LoraPair(pr.a, _to_layout(t, pr.b, cfg, "hf", layout))
                                        for t, pr in sorted(pairs.items())}, alpha)


# ---- GGUF (llama.cpp's LoRA adapter format) ----------------------------------------------


def _from_gguf(p: Path, cfg: ModelConfig, layout: str) -> LoraAdapter:
    from ..kernels import reference
    from .gguf_file import GGUF_ARCH
    from .gguf_reader import GGUFFile
    from .quant import quant_type

    reader = GGUFFile(p)
    kind = reader.field("general.type")
    if kind != "adapter":
        raise ModelFileError(f"{p}: general.type is {kind!r}, not 'adapter': this GGUF file is not a LoRA adapter"
                             + (" (it is a model file)" if kind in (None, "model") else ""))
    if reader.field("adapter.type") != "lora":
        raise ModelFileError(f"{p}: adapter.type is {reader.field('adapter.type')!r}; pocketlm runs 'lora' adapters")
    arch = reader.field("general.architecture")
    if arch != GGUF_ARCH[cfg.arch]:
        raise ModelFileError(f"{p}: the adapter is for a {arch!r} model, the base model is {GGUF_ARCH[cfg.arch]!r}")
    alpha = reader.field("adapter.lora.alpha", 0.0)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ModelFileError(f"{p}: adapter.lora.alpha must be a number >= 0, got {alpha!r}")
    halves: dict[str, dict[str, np.ndarray]] = {}
    for t in reader.tensors:
        m = re.fullmatch(r"(.+\.weight)\.lora_([ab])", t.name)
        if m is None:
            raise ModelFileError(f"{p}: tensor {t.name} is not a LoRA weight (NAME.weight.lora_a / .lora_b)")
        qt = quant_type(t.tensor_type)
        data = reference.dequantize(t.data, qt.name, t.shape[0]) if qt.is_block else np.asarray(t.data, np.float32)
        halves.setdefault(m.group(1), {})[m.group(2)] = np.asarray(data, np.float32).reshape(t.shape[1], t.shape[0])
    pairs: dict[str, LoraPair] = {}
    for base, ab in sorted(halves.items()):
        if set(ab) != {"a", "b"}:
            raise ModelFileError(f"{p}: {base}.lora_{next(iter(ab))} has no lora_{'b' if 'a' in ab else 'a'} partner")
        a, b = ab["a"], ab["b"]
        kind = base.split(".")[-2] if re.fullmatch(r"blk\.\d+\.\w+\.weight", base) else None
        if kind not in TARGETS + _FUSED_TARGETS:
            raise ModelFileError(f"{p}: target {base} is not supported: pocketlm applies LoRA to the attention and "
                                 f"MLP projections ({', '.join(TARGETS)})")
        if a.shape[0] != b.shape[1]:
            raise ModelFileError(f"{p}: {base}.lora_a {a.shape} and .lora_b {b.shape} do not share a rank")
        # llama.cpp's scale: alpha / rank (the rank of each pair), or 1 when alpha is 0
        b = b * np.float32(alpha / a.shape[0] if alpha else 1.0)
        parts = _split_target(base, a, b, cfg, fused_layout="llama.cpp")
        for target, pair in parts.items():
            pairs[target] = _check_fit(target, pair, cfg, f"{base}.lora_a {a.shape} / .lora_b {b.shape}", p)
    if not pairs:
        raise ModelFileError(f"{p}: the adapter holds no LoRA weights")
    return LoraAdapter(str(p), "gguf", {t: LoraPair(pr.a, _to_layout(t, pr.b, cfg, "llama.cpp", layout))
                                        for t, pr in sorted(pairs.items())}, float(alpha))


# ---- shared ---------------------------------------------------------------------------


def _split_target(canonical: str, a: np.ndarray, b: np.ndarray, cfg: ModelConfig,
                  fused_layout: str = "hf") -> dict[str, LoraPair]:
    """{canonical weight: pair}; a fused attn_qkv target becomes q, k and v pairs
    sharing A (B's rows split as the fused weight's are: Hugging Face's order,
    or llama.cpp's contiguous q; k; v); a fused gate/up (Phi-3's gate_up_proj,
    llama.cpp's phi3 ffn_up of 2 x intermediate rows) gate and up pairs."""
    from .gguf_file import FUSED_GATE_UP

    a = np.ascontiguousarray(a, np.float32)
    f = cfg.intermediate_size
    fused_mlp = ".ffn_gate_up." in canonical or (
        fused_layout == "llama.cpp" and cfg.arch in FUSED_GATE_UP and ".ffn_up." in canonical and b.shape[0] == 2 * f)
    if fused_mlp:
        if b.shape[0] != 2 * f:
            return {canonical: LoraPair(a, b)}  # _check_fit names the mismatch
        base = canonical.replace(".ffn_gate_up.", ".ffn_up.")
        return {base.replace(".ffn_up.", f".ffn_{x}."): LoraPair(a, np.ascontiguousarray(part, np.float32))
                for x, part in (("gate", b[:f]), ("up", b[f:]))}
    if ".attn_qkv." not in canonical:
        return {canonical: LoraPair(a, np.ascontiguousarray(b, np.float32))}
    if b.shape[0] != cfg.q_dim + 2 * cfg.kv_dim:
        return {canonical: LoraPair(a, b)}  # _check_fit names the mismatch
    if fused_layout == "hf":
        from .checkpoint import split_fused_qkv

        parts = split_fused_qkv(b, cfg)
    else:
        parts = np.split(b, [cfg.q_dim, cfg.q_dim + cfg.kv_dim], axis=0)
    return {canonical.replace(".attn_qkv.", f".attn_{x}."): LoraPair(a, np.ascontiguousarray(part, np.float32))
            for x, part in zip("qkv", parts)}


def _check_fit(target: str, pair: LoraPair, cfg: ModelConfig, what: str, where: Path) -> LoraPair:
    """The pair if its shapes fit the base model's weight, else the error that names both."""
    from .checkpoint import expected_shape

    layer = int(target.split(".")[1]) if target.startswith("blk.") else -1
    kind = target.split(".")[-2]
    want = expected_shape(target, cfg) if 0 <= layer < cfg.n_layers else None
    if kind == "attn_qkv" and 0 <= layer < cfg.n_layers:
        want = (cfg.q_dim + 2 * cfg.kv_dim, cfg.hidden_size)
    if kind == "ffn_gate_up" and 0 <= layer < cfg.n_layers and cfg.gated_mlp:
        want = (2 * cfg.intermediate_size, cfg.hidden_size)
    if kind == "ffn_gate" and not cfg.gated_mlp:
        want = None
    if want is None:
        raise ModelFileError(f"{where}: {what} is for {target}, which the base model ({cfg.arch}, {cfg.n_layers} "
                             "layers) does not have: the adapter was made for another base model")
    n, k = want
    if pair.a.shape[1] != k or pair.b.shape[0] != n:
        raise ModelFileError(f"{where}: {what} does not fit the base model's {target} of shape {want} ([out, in]): "
                             "the adapter was made for another base model")
    return pair


def _unpermute(w: np.ndarray, n_heads: int, head_dim: int) -> np.ndarray:
    """permute_for_llama_cpp undone: adjacent-pair rows back to rotate-half order."""
    return np.ascontiguousarray(w.reshape(n_heads, head_dim // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def _to_layout(target: str, b: np.ndarray, cfg: ModelConfig, have: str, want: str) -> np.ndarray:
    """lora_B's rows for q and k moved between Hugging Face's and llama.cpp's Llama layouts."""
    from .gguf_file import permute_for_llama_cpp

    kind = target.split(".")[-2]
    if have == want or cfg.arch not in ("llama", "mistral") or kind not in ("attn_q", "attn_k"):
        return b
    heads = cfg.n_heads if kind == "attn_q" else cfg.n_kv_heads
    return permute_for_llama_cpp(b, heads, cfg.head_dim) if want == "llama.cpp" else _unpermute(b, heads, cfg.head_dim)


# ---- writing ---------------------------------------------------------------------------


def write_adapter_gguf(path: str | Path, cfg: ModelConfig, adapter: LoraAdapter, name: str = "") -> Path:
    """The adapter as a GGUF LoRA adapter in llama.cpp's format (general.type
    adapter, adapter.type lora, adapter.lora.alpha, blk.N.<name>.weight.lora_a
    [r, in] / .lora_b [out, r], F32), for the base model's file as pocketlm's
    converter writes it: adapter must be laid out for "llama.cpp"
    (load_adapter(..., model_layout="llama.cpp")). q/k/v pairs of the
    architectures llama.cpp runs with a fused attn_qkv are fused back, and
    gate/up pairs into ffn_up where llama.cpp fuses them (Phi-3)."""
    import gguf

    from .._atomic import atomic_output
    from .gguf_file import FUSED_GATE_UP, FUSED_QKV, GGUF_ARCH

    alpha = adapter.alpha
    tensors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for target, pair in adapter.pairs.items():
        # B carries the module's scale; the file's readers multiply by alpha / rank (1 when alpha is 0)
        unscale = np.float32(pair.rank / alpha) if alpha else np.float32(1.0)
        tensors[target] = (pair.a, pair.b * unscale)
    if cfg.arch in FUSED_QKV:
        for i in range(cfg.n_layers):
            parts = [f"blk.{i}.attn_{x}.weight" for x in "qkv"]
            have = [p for p in parts if p in tensors]
            if not have:
                continue
            if len(have) != 3 or not all(np.array_equal(tensors[p][0], tensors[parts[0]][0]) for p in parts):
                raise ValueError(f"{adapter.path}: llama.cpp runs {cfg.arch} with q, k and v fused into one attn_qkv: "
                                 f"an adapter for it adapts all three with one lora_A (layer {i} adapts "
                                 f"{', '.join(h.split('.')[2] for h in have)})")
            a = tensors[parts[0]][0]
            b = np.concatenate([tensors.pop(p)[1] for p in parts])
            tensors[f"blk.{i}.attn_qkv.weight"] = (a, b)
    if cfg.arch in FUSED_GATE_UP:
        for i in range(cfg.n_layers):
            gate, up = f"blk.{i}.ffn_gate.weight", f"blk.{i}.ffn_up.weight"
            have = [p for p in (gate, up) if p in tensors]
            if not have:
                continue
            if len(have) != 2 or not np.array_equal(tensors[gate][0], tensors[up][0]):
                raise ValueError(f"{adapter.path}: llama.cpp runs {cfg.arch} with gate and up fused into one ffn_up: "
                                 f"an adapter for it adapts both with one lora_A (layer {i} adapts "
                                 f"{', '.join(h.split('.')[2] for h in have)})")
            a = tensors[gate][0]
            tensors[up] = (a, np.concatenate([tensors.pop(gate)[1], tensors[up][1]]))
    path = Path(path)
    with atomic_output(path) as tmp:
        w = gguf.GGUFWriter(tmp, GGUF_ARCH[cfg.arch])
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_name(name or Path(adapter.path).name)
        w.add_string("adapter.type", "lora")
        w.add_float32("adapter.lora.alpha", float(alpha))
        for target in sorted(tensors, key=_tensor_order):
            a, b = tensors[target]
            w.add_tensor(target + ".lora_a", np.ascontiguousarray(a, np.float32))
            w.add_tensor(target + ".lora_b", np.ascontiguousarray(b, np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file(progress=False)
        w.close()
    return path


def _tensor_order(name: str):
    parts = name.split(".")
    return (int(parts[1]), parts[2]) if parts[0] == "blk" else (-1, name)
