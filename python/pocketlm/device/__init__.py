"""Simulated phones. A DeviceProfile (one JSON file a phone, schema in
docs/devices.md, every figure with its source) describes RAM, the memory an
app can hold, CPU clusters, the runtime's threads, memory bandwidth and
compute. `context(profile)` is what `LlmInference.createFromOptions(context,
options)` takes: with it the run is held to the phone's limits (memory
counted against the app budget, kernels capped to its threads), and
`estimate()` turns what the run measured into the phone's speed.

    ctx = pocketlm.device.context("pixel_8")
    llm = LlmInference.createFromOptions(ctx, options)   # DeviceMemoryError if it does not fit
    llm.generateResponse("Hello")
    print(ctx.report())                                   # memory peak, estimated tok/s on the phone
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import threading
from dataclasses import dataclass
from pathlib import Path

PROFILE_DIR = Path(__file__).parent / "profiles"
SCHEMA = "pocketlm.device/1"
# share of peak compute the kernels reach in a prefill (the roofline's compute roof); from the published
# prefill figures of docs/devices.md (0.5-0.75 on the Snapdragon 8 Gen 3)
COMPUTE_EFFICIENCY = 0.5
# what the runtime itself holds besides model, KV cache and activations (code, tokenizer, buffers)
RUNTIME_OVERHEAD_BYTES = 32 * 1024 * 1024


class DeviceMemoryError(MemoryError):
    """The model, or an allocation during the run, does not fit the phone's app memory budget."""


class SpeedNotModelledError(ValueError):
    """The run counted nothing the speed estimate reads (the LiteRT engine's runs: LiteRT's kernels report no
    traffic), so no phone speed is given rather than a wrong one."""


@dataclass(frozen=True)
class CpuCluster:
    kind: str  # "big", "mid" or "little"
    core: str  # e.g. "Cortex-X4"
    count: int
    ghz: float


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    display_name: str
    soc: str
    ram_bytes: int  # total RAM
    app_memory_budget: int  # bytes an app can keep resident before the low-memory killer ends it
    cpu_clusters: tuple[CpuCluster, ...]
    threads: int  # threads the runtime uses on this phone (the kernels' cap)
    memory_bandwidth_gbps: float  # sustained DRAM read bandwidth, GB/s
    peak_int8_gops: float  # int8 multiply-add throughput x 2 of `threads` cores, G ops/s
    peak_fp32_gflops: float  # fp32 FMA throughput x 2 of `threads` cores, GFLOP/s
    memory_bandwidth_peak_gbps: float = 0.0  # theoretical peak, for reference
    sources: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)

    @property
    def cores(self) -> int:
        return sum(c.count for c in self.cpu_clusters)


_NUMBERS = {"ram_bytes": int, "app_memory_budget": int, "threads": int, "memory_bandwidth_gbps": float,
            "peak_int8_gops": float, "peak_fp32_gflops": float}


def _profile_from_dict(d: dict, where: str) -> DeviceProfile:
    def bad(msg):
        return ValueError(f"device profile {where}: {msg}")

    if not isinstance(d, dict):
        raise bad("must be a JSON object")
    if d.get("schema", SCHEMA) != SCHEMA:
        raise bad(f"schema {d.get('schema')!r} is not {SCHEMA!r}")
    for key in ("name", "display_name", "soc"):
        if not isinstance(d.get(key), str) or not d[key]:
            raise bad(f"{key} must be a non-empty string")
    for key, kind in _NUMBERS.items():
        v = d.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)) or v <= 0:
            raise bad(f"{key} must be a positive {'integer' if kind is int else 'number'}, got {v!r}")
    clusters = d.get("cpu_clusters")
    if not isinstance(clusters, list) or not clusters:
        raise bad("cpu_clusters must be a non-empty list")
    parsed = []
    for i, c in enumerate(clusters):
        try:
            cl = CpuCluster(str(c["kind"]), str(c["core"]), int(c["count"]), float(c["ghz"]))
        except (KeyError, TypeError, ValueError) as e:
            raise bad(f"cpu_clusters[{i}] needs kind, core, count, ghz ({e})") from None
        if cl.kind not in ("big", "mid", "little") or cl.count < 1 or cl.ghz <= 0:
            raise bad(f"cpu_clusters[{i}]: kind big/mid/little, count >= 1, ghz > 0")
        parsed.append(cl)
    if d["app_memory_budget"] > d["ram_bytes"]:
        raise bad("app_memory_budget is larger than ram_bytes")
    if d["threads"] > sum(c.count for c in parsed):
        raise bad(f"threads {d['threads']} is more than the {sum(c.count for c in parsed)} cores")
    sources = d.get("sources", {})
    missing = [k for k in ("ram_bytes", "app_memory_budget", "memory_bandwidth_gbps") if k not in sources]
    if missing:
        raise bad(f"sources must say where {', '.join(missing)} come from")
    return DeviceProfile(d["name"], d["display_name"], d["soc"], d["ram_bytes"], d["app_memory_budget"],
                         tuple(parsed), d["threads"], float(d["memory_bandwidth_gbps"]), float(d["peak_int8_gops"]),
                         float(d["peak_fp32_gflops"]), float(d.get("memory_bandwidth_peak_gbps", 0.0)), dict(sources))


def list_profiles() -> list[str]:
    """Names of the profiles shipped with pocketlm."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A shipped profile by name (see list_profiles()) or a profile file by path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = PROFILE_DIR / f"{name_or_path}.json"
        if not p.is_file():
            raise ValueError(f"no device profile {name_or_path!r}; shipped: {', '.join(list_profiles())}")
    try:
        d = json.loads(p.read_text())
    except OSError as e:
        raise ValueError(f"device profile {p}: cannot be read ({e})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"device profile {p}: not valid JSON ({e})") from None
    return _profile_from_dict(d, str(p))


# -- memory ------------------------------------------------------------------------------


def _fmt(n: float) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


@dataclass(frozen=True)
class MemoryNeed:
    """Resident bytes a model needs on a phone, by part."""

    weights: int  # every tensor as mapped (the file's tensor data)
    kv_cache: int  # keys and values for maxTokens positions (a LiteRT graph: its KV cache tensors, whole)
    activations: int  # the largest prefill's per-token buffers + one row of logits
    runtime: int = RUNTIME_OVERHEAD_BYTES
    packed_weights: int = 0  # XNNPack's repacked copy of the weights, a session (the LiteRT engine)

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.activations + self.runtime + self.packed_weights

    def breakdown(self) -> str:
        packed = f", XNNPack packed weights {_fmt(self.packed_weights)}" if self.packed_weights else ""
        return (f"weights {_fmt(self.weights)}{packed}, KV cache {_fmt(self.kv_cache)}, activations "
                f"{_fmt(self.activations)}, runtime {_fmt(self.runtime)}")


def activation_bytes_per_token(cfg) -> int:
    """F32 buffers one position holds during a forward pass."""
    kv_dim = cfg.n_kv_heads * cfg.head_dim
    return 4 * (4 * cfg.hidden_size + cfg.q_dim + 2 * kv_dim + 2 * cfg.intermediate_size)


def memory_needed(model, max_tokens: int, kv_type: str = "F32", native=None) -> MemoryNeed:
    """What a model needs with a session of max_tokens. native: the C engine's
    model (a NativeModel), whose figures are what it allocates: the weights it
    maps plus what it converted, and the session's buffers. A LiteRT graph
    (model.litert_model.LiteRTGraph) is counted as LiteRT holds it
    (model/litert_memory.py's figures: the mapped graph, LiteRT's runtime, and a
    session's whole KV cache, XNNPack's packed weights and activations)."""
    from ..model.forward import PREFILL_CHUNK
    from ..model.info import kv_cache_bytes, weight_bytes
    from ..model.litert_model import LiteRTGraph

    if isinstance(model, LiteRTGraph):
        from ..model.litert_memory import LITERT_RUNTIME_BYTES, mapped_bytes, session_memory

        parts = dict(session_memory(model, native, max_tokens))
        return MemoryNeed(mapped_bytes(model, native), parts["KV cache"], parts["activations"], LITERT_RUNTIME_BYTES,
                          parts["packed weights"])
    cfg = model.cfg
    kv = kv_cache_bytes(model, max_tokens, kv_type)  # sliding-window layers: their window's ring
    if native is not None:
        return MemoryNeed(native.weight_bytes + native.owned_bytes, kv, native.session_bytes(max_tokens, kv_type) - kv)
    return MemoryNeed(weight_bytes(model), kv,
                      min(max_tokens, PREFILL_CHUNK) * activation_bytes_per_token(cfg) + 4 * cfg.vocab_size)


def _what_would_fit(model, max_tokens: int, need: MemoryNeed, budget: int, kv_type: str = "F32") -> list[str]:
    from ..model.info import kv_cache_bytes, parameter_count
    from ..model.litert_model import LiteRTGraph

    ideas = []
    if isinstance(model, LiteRTGraph):  # the cache length is fixed in the graph: maxTokens does not shrink it
        per_position = need.kv_cache / model.cache_length
        room = budget - (need.total - need.kv_cache)
        if room >= per_position and room // per_position < model.cache_length:
            ideas.append(f"the model exported with a KV cache of <= {int(room // per_position)} positions (this "
                         f"file's is {model.cache_length}, whatever maxTokens is)")
        return ideas
    params = parameter_count(model)
    for label, bytes_per_param in (("int8 (Q8_0) weights", 34 / 32), ("int4 (Q4_0) weights", 18 / 32)):
        w = int(params * bytes_per_param)
        if w < need.weights and w + need.kv_cache + need.activations + need.runtime <= budget:
            ideas.append(f"{label}: {_fmt(w + need.kv_cache + need.activations + need.runtime)}")
            break
    room = budget - need.weights - need.runtime - need.activations
    # the largest maxTokens whose KV cache fits the room (sliding-window layers hold only their ring, so the
    # cache is not linear in maxTokens)
    lo, hi = 0, max_tokens - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if kv_cache_bytes(model, mid, kv_type) <= room:
            lo = mid
        else:
            hi = mid - 1
    if lo >= 1:
        ideas.append(f"maxTokens <= {lo}")
    return ideas


class MemoryBudget:
    """Counts the run's allocations against the app budget and keeps the peak."""

    def __init__(self, profile: DeviceProfile):
        self.profile, self.in_use, self.peak = profile, 0, 0
        self.parts: dict[str, int] = {}
        self._lock = threading.Lock()

    def reserve(self, what: str, nbytes: int) -> None:
        with self._lock:
            if self.in_use + nbytes > self.profile.app_memory_budget:
                raise DeviceMemoryError(
                    f"{what} needs {_fmt(nbytes)} more, with {_fmt(self.in_use)} already held; "
                    f"{self.profile.display_name} lets an app hold {_fmt(self.profile.app_memory_budget)}")
            self.in_use += nbytes
            self.parts[what] = self.parts.get(what, 0) + nbytes
            self.peak = max(self.peak, self.in_use)

    def reserve_parts(self, parts: list[tuple[str, int]]) -> None:
        """Reserves several parts of one allocation at once: all or none."""
        total = sum(n for _, n in parts)
        with self._lock:
            if self.in_use + total > self.profile.app_memory_budget:
                names = " + ".join(f"{what} {_fmt(n)}" for what, n in parts)
                raise DeviceMemoryError(
                    f"{names} need {_fmt(total)} more, with {_fmt(self.in_use)} already held; "
                    f"{self.profile.display_name} lets an app hold {_fmt(self.profile.app_memory_budget)}")
            for what, n in parts:
                self.in_use += n
                self.parts[what] = self.parts.get(what, 0) + n
            self.peak = max(self.peak, self.in_use)

    def release(self, what: str, nbytes: int) -> None:
        with self._lock:
            self.in_use -= nbytes
            self.parts[what] = self.parts.get(what, 0) - nbytes
            if not self.parts[what]:
                del self.parts[what]

    @contextlib.contextmanager
    def hold(self, what: str, nbytes: int):
        self.reserve(what, nbytes)
        try:
            yield
        finally:
            self.release(what, nbytes)


class DeviceContext:
    """The `context` of createFromOptions: a phone's limits, applied to the run."""

    def __init__(self, profile: DeviceProfile):
        self.profile = profile
        self.memory = MemoryBudget(profile)
        self.last_stats = None  # the last generation's GenerationStats, for report()
        self._saved_caps: dict[str, int] = {}

    def check_fits(self, model, max_tokens: int, what: str, kv_type: str = "F32", native=None) -> MemoryNeed:
        need = memory_needed(model, max_tokens, kv_type, native)
        budget = self.profile.app_memory_budget
        if need.total > budget:
            ideas = _what_would_fit(model, max_tokens, need, budget, kv_type)
            raise DeviceMemoryError(
                f"{what} needs {_fmt(need.total)} with maxTokens {max_tokens} ({need.breakdown()}), but "
                f"{self.profile.display_name} lets an app hold {_fmt(budget)} of its {_fmt(self.profile.ram_bytes)}. "
                + ("Would fit: " + "; or ".join(ideas) + "." if ideas else "Nothing smaller of this model would fit."))
        return need

    def apply_thread_cap(self) -> None:
        """Caps both kernel backends' threads at the profile's (process-wide, as the phone's runtime is)."""
        from .. import kernels

        for name in ("native", "numba"):
            try:
                backend = kernels.get_backend(name)
            except ImportError:
                continue
            self._saved_caps[name] = backend.set_max_threads(self.profile.threads)

    def restore_thread_cap(self) -> None:
        from .. import kernels

        for name, cap in self._saved_caps.items():
            kernels.get_backend(name).set_max_threads(cap)
        self._saved_caps.clear()

    def report(self) -> str:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        lines = [f"{self.profile.display_name}: counted peak {_fmt(self.memory.peak)} of "
                 f"{_fmt(self.profile.app_memory_budget)} allowed (desktop process peak RSS {_fmt(rss)}, "
                 f"Python included); {self.profile.threads} threads"]
        if self.last_stats is not None and self.last_stats.decode_traffic.tokens:
            try:
                lines.append(f"estimated on the phone: {estimate(self.profile, self.last_stats).summary()}")
            except SpeedNotModelledError as e:
                lines.append(f"estimated on the phone: not modelled ({e})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"DeviceContext({self.profile.name})"


def context(profile_or_name: DeviceProfile | str | Path) -> DeviceContext:
    profile = profile_or_name if isinstance(profile_or_name, DeviceProfile) else load_profile(profile_or_name)
    return DeviceContext(profile)


# -- speed -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedEstimate:
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    time_to_first_token_s: float
    prefill_bound: str  # "memory" or "compute"
    decode_bound: str

    def summary(self) -> str:
        return (f"prefill {self.prefill_tokens_per_s:.0f} tok/s ({self.prefill_bound}-bound), decode "
                f"{self.decode_tokens_per_s:.1f} tok/s ({self.decode_bound}-bound), time to first token "
                f"{self.time_to_first_token_s * 1e3:.0f} ms")


def _roofline(profile: DeviceProfile, traffic, quantized: bool) -> tuple[float, str]:
    """Seconds the phone needs for traffic: the slower of streaming its bytes
    and computing its flops."""
    mem_s = (traffic.weight_bytes + traffic.kv_bytes) / (profile.memory_bandwidth_gbps * 1e9)
    peak = profile.peak_int8_gops if quantized else profile.peak_fp32_gflops
    compute_s = traffic.flops / (peak * 1e9 * COMPUTE_EFFICIENCY)
    return (mem_s, "memory") if mem_s >= compute_s else (compute_s, "compute")


def estimate(profile: DeviceProfile, stats, quantized: bool | None = None) -> SpeedEstimate:
    """Phone speed from a GenerationStats' measured traffic. quantized: the
    weights are int8/int4 (integer dot products); default: read from the
    bytes per flop of the run (under ~1.5 bytes a multiply-add is quantized).
    A run that ran tokens but counted no bytes or flops (the LiteRT engine's)
    raises SpeedNotModelledError: its speed is not modelled yet."""
    pre, dec = stats.prefill_traffic, stats.decode_traffic
    if (pre.tokens or dec.tokens) and not any((pre.weight_bytes, pre.kv_bytes, pre.flops, dec.weight_bytes,
                                               dec.kv_bytes, dec.flops)):
        raise SpeedNotModelledError(
            f"the run's {pre.tokens} prefill and {dec.tokens} decode tokens counted no weight or KV bytes read and "
            "no flops, which the estimate needs: the LiteRT engine's runs (LiteRT's kernels) report none, so "
            "their speed on a phone is not modelled yet")
    if quantized is None:
        t = dec if dec.tokens else pre
        per_token_weights = t.weight_bytes / max(t.tokens, 1)
        per_token_macs = t.flops / 2 / max(t.tokens, 1)
        quantized = per_token_weights < 1.5 * per_token_macs
    pre_s, pre_bound = _roofline(profile, pre, quantized)
    dec_s, dec_bound = _roofline(profile, dec, quantized)
    step = dec_s / dec.tokens if dec.tokens else 0.0
    return SpeedEstimate(pre.tokens / pre_s if pre_s else 0.0, 1.0 / step if step else 0.0, pre_s + step,
                         pre_bound, dec_bound)


from .runtimes import (RUNTIMES, WEIGHT_TYPES, ModelShape, RuntimeEstimate, estimate_runtime,  # noqa: E402
                       fit_profiles, shape_from_config, shape_from_model)
from .litert_shape import LiteRTFit, shape_from_litert  # noqa: E402

__all__ = ["RUNTIMES", "WEIGHT_TYPES", "ModelShape", "RuntimeEstimate", "estimate_runtime", "fit_profiles",
           "shape_from_config", "shape_from_model", "LiteRTFit", "shape_from_litert", "CpuCluster", "DeviceContext", "DeviceMemoryError", "DeviceProfile", "MemoryBudget", "MemoryNeed",
           "SpeedEstimate", "SpeedNotModelledError", "context", "estimate", "list_profiles", "load_profile",
           "memory_needed"]
