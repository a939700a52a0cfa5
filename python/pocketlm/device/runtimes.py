"""What a phone's runtime reads, computes and holds for a model, and so how fast it runs there and how much it
needs: the estimate `pocketlm fit` prints, from a config without running the model, or from a file.

Three runtimes run LLMs on a phone's CPU, and their costs differ in kind (docs/devices.md):

- `litert`: MediaPipe's LLM Inference API and LiteRT-LM, a TFLite graph on XNNPack. Its KV cache is a fixed
  graph input of `max_tokens` positions in float32, and every decode step and every prefill chunk attends over
  all of them (masked), filled or not. XNNPack repacks the weights (a weight cache maps the packed copy from a
  file; without one the packed copy sits beside the mapped file). Prefill runs as LiteRT-LM splits it over the
  graph's prefill signatures, each run computing its signature's whole (static) length.
- `llama.cpp`: ggml on the mapped GGUF (Q8_0 / Q4_0 blocks), an F16 KV cache read over the filled positions.
- `pocketlm`: pocketlm's C engine through its C API / JNI: the mapped GGUF, an F16 KV cache over the filled
  positions, one parallel region a token.
- `executorch` (for the published Llama 3.2 figures only): ExecuTorch on XNNPack, its SDPA reading the filled
  positions of a float32 cache.

A step's time is the sum of streaming its bytes at the phone's bandwidth, its matrix products at the runtime's
share of the phone's peak, its attention at the runtime's float32 attention rate, and the runtime's fixed costs
per layer and per token. Every constant is in CONSTANTS, with where it comes from: measured with the real
runtime on the development machine (HOST), carried to a phone by the profile's per-core speed, or fitted by
tools/calibrate_devices.py over the published phone figures it holds (which also checks each point with the
constants fitted without it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

RUNTIMES = ("litert", "llama.cpp", "pocketlm")
_ALL_RUNTIMES = RUNTIMES + ("executorch",)
WEIGHT_TYPES = ("int8", "int4", "fp16", "fp32")

# The development machines. Every runtime's host constants were measured on the second, which the development
# machine became (docs/performance.md, 2026-12-02: AVX512-VNNI): LiteRT's with build/calib's exports
# (docs/devices.md), llama.cpp's and pocketlm's with tools/measure_fixed_costs.py and the race of three. The
# first is kept for the figures docs/performance.md recorded on it.
HOSTS = {
    "zen1": {
        "cpu": "AMD EPYC (Zen 1), 2.6 GHz, AVX2",
        # fp32: 2 FMA pipes x 4 lanes x 2 flops x 2.6 GHz (AMD's Zen core: 4 128-bit FP pipes, 2 of them FMA)
        "fp32_gflops_per_core": 41.6,
        "bandwidth_gbps": 33.6,  # tools/membw.py, 1 thread, idle (docs/performance.md)
    },
    "zen4": {
        "cpu": "AMD EPYC (Zen 4: family 25 model 17), 2.6 GHz, AVX512-VNNI, 2 MiB L2 a core, 32 MiB L3",
        # fp32: 2 FMA pipes x 8 lanes (256-bit datapaths; AVX-512 in two halves) x 2 flops x 2.6 GHz
        "fp32_gflops_per_core": 83.2,
        # int8: 64 multiply-adds a cycle (vpdpbusd, docs/performance.md) x 2 ops x 2.6 GHz
        "int8_gops_per_core": 332.8,
        "bandwidth_gbps": 30.7,  # tools/membw.py, 1 thread (build/bench/race2.log)
    },
}
HOST = HOSTS["zen4"]
# the host each runtime's *_host constants were measured on
RUNTIME_HOST = {"litert": "zen4", "executorch": "zen4", "llama.cpp": "zen4", "pocketlm": "zen4"}


@dataclass(frozen=True)
class Constant:
    value: float
    source: str


_HOST_RUN = ("measured on the development machine (HOSTS['zen4']) with litert_lm.Benchmark (litert-lm-api 0.18.1, "
             "Backend.CPU(thread_count=1)), as the CPU time (getrusage, every thread) of runs that differ only in "
             "their decode or prefill tokens, so that the time other processes took cancels; the files alternate, "
             "min of 3-6 runs each; 2026-12-02, the machine shared (load average 5-7 on 2 cores); docs/devices.md")
_RACE = ("HOSTS['zen4'], idle (load average 0.2-0.8), 2026-12-02: tools/bench_vs_llama_cpp.py --threads 1 2 "
         "--prompts 128 512 --repeats 3 (docs/performance.md)")
_FITTED = ("fitted by tools/calibrate_devices.py --fit (least squares of log(estimate / published)) over its "
           "published {runtime} points; the leave-one-out figure refits it without each point")

# Every constant of the model. The *_host ones were measured on the runtime's host (RUNTIME_HOST); a phone gets
# them times per_core_slowdown (the host's per-core fp32 rate over the phone's), and the ones XNNPack splits over
# its threads divided by the profile's threads. The fitted ones carry what the host cannot show: a phone's 4
# threads across big.LITTLE clusters, and the share of an Arm core's peak that XNNPack's int8 GEMM reaches.
CONSTANTS: dict[str, Constant] = {
    # --- litert (MediaPipe / LiteRT-LM on XNNPack) ---
    "litert.layer_s_host": Constant(19e-6, "a decode step of tests/fixtures/litert/llama-tiny-int8.litertlm "
                                    "(2 layers, 0.14 M parameters: fixed costs only) takes 38 us of CPU (40.6 us "
                                    "wall) on 1 thread: ~19 us a layer; " + _HOST_RUN),
    "litert.sync_factor": Constant(14.4, _FITTED.format(runtime="litert") + "; multiplies litert.layer_s_host "
                                   "carried to the phone. The host shows the barrier cost but not a phone's: the "
                                   "tiny graph's 2-thread step is 49 us wall (61 us CPU) against 40.6 on 1 thread, "
                                   "+4 us a layer for XNNPack's per-operator thread barriers between two cores of "
                                   "one die; a phone's 4 threads span a prime and performance cores of two "
                                   "clusters"),
    "litert.gemv_efficiency": Constant(1.0, "share of the profile's peak a decode step's matrix-vector products "
                                       "take beside streaming: none measurable on the host, where SmolLM2-135M "
                                       "int8 (build/bench/smollm2-135m-int8.litertlm, cache 1024) decodes in "
                                       "14.5 ms of CPU, and its 142 MB at 30.7 GB/s (4.6 ms) + its cache reads "
                                       "(litert.kv_byte_s_host: 9.2 ms) + 30 layers' fixed cost (0.6 ms) make "
                                       "14.4 ms; the products are counted at the full peak; " + _HOST_RUN),
    "litert.gemm_efficiency": Constant(0.49, _FITTED.format(runtime="litert") + "; share of the profile's int8 "
                                       "(fp32 for float weights) peak a prefill's matrix products reach. The host does not "
                                       "pin it: SmolLM2-135M int8's 128-token chunk takes 175 ms of CPU, and its "
                                       "attention at litert.attention_prefill_s_host (104 ms) leaves 71 ms for "
                                       "27.2 G int8 ops, at or past the VNNI peak, within the two measurements' "
                                       "noise; and XNNPack's Arm kernels (SDOT / I8MM) have their own share, which "
                                       "only the phone figures give"),
    "litert.kv_byte_s_host": Constant(0.194e-9, "seconds a decode step spends on each byte of the graph's whole "
                                      "F32 KV cache on one host core (the graph updates the cache with "
                                      "DYNAMIC_UPDATE_SLICE and attends over all of it: about 6 passes at the "
                                      "host's 30.7 GB/s). A Llama of hidden 512, 8 layers, vocab 4096, int8, "
                                      "exported by litert-torch at caches 512 / 1024 / 2048 / 4096 with 4 KV heads "
                                      "(2 KB a position a layer) decodes in 1.3-1.7 / 3.5 / 6.5 / 13.1-13.4 ms of "
                                      "CPU: 398 ns a position a layer past 1024 (below, the cache sits in the L3); "
                                      "with 1 KV head (512 B) 0.5-0.7 ms at 512 and 3.9-4.1 at 4096, 112-119 ns: "
                                      "the cost follows the cache's bytes, not the heads' arithmetic. Split over "
                                      "the phone's threads; " + _HOST_RUN),
    "litert.attention_prefill_s_host": Constant(0.046e-9, "seconds a prefill spends per (prompt token x cached "
                                                "position x query element) on one host core: the graph's prefill "
                                                "attends every token over the whole cache. The hidden-512 Llama's "
                                                "128-token chunk (prefill_128) takes 29.6 / 121.4 ms at caches 512 "
                                                "/ 4096 with 4 KV heads and 27.1 / 110.3 with 1 (wall, best of 8, "
                                                "alternating; the CPU-time differences agree within their noise): "
                                                "23.8 ns a token, position and layer for 512 query elements, the "
                                                "same for either head count, so arithmetic, not the cache's bytes: "
                                                "4 flops an element at 86 G/s, the host core's fp32 peak (83.2). "
                                                "Split over the phone's threads; litert_lm.Benchmark, "
                                                "Backend.CPU(thread_count=1), 2026-12-02, load average 5-6"),
    "litert.kv_copies": Constant(2, "LiteRT-LM swaps an input and an output cache buffer "
                                 "(model/litert_memory.py, measured)"),
    # --- llama.cpp (ggml) ---
    "llama.cpp.layer_s_host": Constant(16.7e-6, "tools/measure_fixed_costs.py: llama-bench -n 64 (0.3.36's "
                                       "vendored build, AVX2 flags) on two tiny Q8_0 Llamas of 2 and 26 layers, "
                                       "1 thread: 42.7 and 443.2 us a step, 16.7 us a layer (9.4 us a token "
                                       "besides); " + _RACE),
    "llama.cpp.gemv_efficiency": Constant(0.19, "llama-bench SmolLM2-135M Q8_0, 1 thread, tg64: 100.4 tok/s; the "
                                          "share of HOSTS['zen4']'s int8 peak at which this model, with "
                                          "llama.cpp.layer_s_host, gives that step (9.96 ms: 4.7 of them "
                                          "streaming 145 MB, 4.1 in the products: 65 G int8 ops/s); " + _RACE),
    "llama.cpp.gemm_efficiency": Constant(0.29, "llama-bench SmolLM2-135M Q8_0, 1 thread, pp128: 342.8 tok/s, the "
                                          "share at which this model gives it (~97 G int8 ops/s); " + _RACE),
    "llama.cpp.attention_efficiency": Constant(0.25, "ggml's F16 flash attention taken at its matrix-vector "
                                               "share (no separate measurement)"),
    "llama.cpp.prefill_chunk": Constant(512, "llama.cpp's default n_ubatch"),
    # --- pocketlm (the C engine) ---
    "pocketlm.layer_s_host": Constant(5.7e-6, "tools/measure_fixed_costs.py: pocketlm's C engine decoding the same "
                                      "two tiny Q8_0 Llamas, 1 thread: 13.8 and 151.6 us a step, 5.7 us a layer "
                                      "(one parallel region a token, 6 barriers a layer: native/src/README.md; "
                                      "2.3 us a token besides); " + _RACE),
    "pocketlm.gemv_efficiency": Constant(1.0, "pocketlm native, SmolLM2-135M Q8_0, 1 thread, 64 decode steps: "
                                         "159.1 tok/s, 6.3 ms a step: the 145 MB at 30.7 GB/s (4.7 ms), the "
                                         "fixed and attention terms make it with the products at the full peak "
                                         "(the row kernels stream at 75 % of the bandwidth limit; their "
                                         "arithmetic hides behind the loads); " + _RACE),
    "pocketlm.gemm_efficiency": Constant(0.70, "pocketlm native, SmolLM2-135M Q8_0, 1 thread: 771.7 tok/s prefill "
                                         "of a 128-token prompt, the share at which this model gives it (~233 G "
                                         "int8 ops/s of 332.8: the AVX512-VNNI GEMM, docs/kernels.md); " + _RACE),
    "pocketlm.attention_efficiency": Constant(0.25, "attention converting each F16 cache row once per GQA group, "
                                              "taken at the matrix-vector share"),
    "pocketlm.prefill_chunk": Constant(256, "the C engine's default n_batch (PLM_DEFAULT_BATCH, "
                                       "native/src/engine/session.c)"),
    # --- executorch (only for the published Llama 3.2 rows): XNNPack's kernels, as litert's ---
    "executorch.layer_s_host": Constant(19e-6, "XNNPack's operators, as litert.layer_s_host"),
    "executorch.sync_factor": Constant(14.4, "as litert.sync_factor (the same XNNPack thread pool)"),
    "executorch.gemv_efficiency": Constant(1.0, "as litert.gemv_efficiency (XNNPack's kernels)"),
    "executorch.gemm_efficiency": Constant(0.49, "as litert.gemm_efficiency"),
    "executorch.attention_efficiency": Constant(1.0, "ExecuTorch's custom SDPA reads the filled positions of its "
                                                "cache once; taken at the fp32 peak (not measured)"),
    "executorch.prefill_chunk": Constant(128, "ExecuTorch's llama runner prefills in one call up to its max "
                                         "sequence; 128 as litert"),
    # --- every runtime ---
    "runtime_bytes.litert": Constant(48 * 2**20, "model/litert_memory.py LITERT_RUNTIME_BYTES (measured)"),
    "runtime_bytes.other": Constant(32 * 2**20, "device.RUNTIME_OVERHEAD_BYTES"),
}
# the fitted constants (tools/calibrate_devices.py --fit) and their runtime
FITTED = {"litert": ("litert.sync_factor", "litert.gemm_efficiency")}

# The prefill signatures a LiteRT graph has when nothing says otherwise: litert-torch's export default
# (litert_torch/generative/utilities/converter.py, flag prefill_seq_lens; the "multi-prefill-seq" files of the
# litert-community cards). A file's own signatures replace them (estimate_runtime's prefill_signatures).
LITERT_PREFILL_SIGNATURES = (8, 64, 128, 256, 512, 1024)


def litert_work_groups(prompt_tokens: int, signatures) -> list[tuple[int, int]]:
    """How LiteRT-LM splits a prompt over a graph's prefill signatures, as (signature length, tokens) runs
    (runtime/executor/litert_compiled_model_executor_utils.cc, GetOptimizedPrefillWorkGroups): the longest
    signature while the prompt left is at least its length, then the rest in one run of the shortest
    signature that holds it. A signature's graph has a static shape, so a run computes its whole length, the
    tokens past the prompt as padding."""
    lengths = sorted({int(n) for n in signatures})
    if not lengths or lengths[0] < 1:
        raise ValueError(f"prefill signatures must be positive lengths, got {signatures!r}")
    groups, left, longest = [], prompt_tokens, lengths[-1]
    while left >= longest:
        groups.append((longest, longest))
        left -= longest
    if left > 0:
        groups.append((next(n for n in lengths if n >= left), left))
    return groups


def constants(overrides: dict[str, float] | None = None) -> dict[str, float]:
    """The constants' values, with overrides (the calibration's refits) in their place."""
    values = {k: c.value for k, c in CONSTANTS.items()}
    for k, v in (overrides or {}).items():
        if k not in values:
            raise ValueError(f"no constant {k!r}")
        values[k] = v
    # executorch shares XNNPack's fitted figures unless given its own
    for k in ("sync_factor", "gemv_efficiency", "gemm_efficiency"):
        if f"executorch.{k}" not in (overrides or {}):
            values[f"executorch.{k}"] = values[f"litert.{k}"]
    return values


# -- the model's shape --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """What the estimate reads of a model: its matrices and attention, independent of any file."""

    n_layers: int
    hidden_size: int
    q_dim: int  # attention heads x head_dim
    kv_dim: int  # KV heads x head_dim
    vocab_size: int
    layer_params: int  # matrix weights of one layer (q, k, v, o, MLP)
    tied: bool  # the classifier reuses the embedding table
    activation_bytes_per_token: int  # F32 buffers one position holds in a forward pass
    window_layers: tuple[int, ...] = ()  # layers whose attention is a sliding window
    window: int = 0
    file_bytes: int = 0  # the file's tensor bytes when the shape comes from a file (0: computed from the type)

    @property
    def classifier_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def matmul_params(self) -> int:
        """Weights a forward pass multiplies by (the layers and the classifier; the embedding is looked up)."""
        return self.n_layers * self.layer_params + self.classifier_params

    @property
    def parameters(self) -> int:
        return self.n_layers * self.layer_params + self.classifier_params * (1 if self.tied else 2)


def shape_from_config(cfg) -> ModelShape:
    """A ModelShape from a ModelConfig (pocketlm.model.config.config_from_dict)."""
    from . import activation_bytes_per_token

    mlp = (3 if cfg.gated_mlp else 2) * cfg.hidden_size * cfg.intermediate_size
    attn = cfg.hidden_size * (cfg.q_dim + 2 * cfg.kv_dim) + cfg.q_dim * cfg.hidden_size
    return ModelShape(cfg.n_layers, cfg.hidden_size, cfg.q_dim, cfg.kv_dim, cfg.vocab_size, attn + mlp,
                      bool(cfg.tie_embeddings), activation_bytes_per_token(cfg),
                      tuple(cfg.sliding_window_layers) if cfg.sliding_window else (), int(cfg.sliding_window or 0))


def shape_from_model(model) -> ModelShape:
    """A ModelShape from a loaded model (pocketlm.model.forward.Model), with the file's weight bytes."""
    from ..model.info import weight_bytes

    return dataclasses.replace(shape_from_config(model.cfg), file_bytes=weight_bytes(model))


# -- bytes, compute ----------------------------------------------------------------------------------------

# bytes a weight in each runtime's storage of the type (per-channel / per-block scales included)
_WEIGHT_BYTES = {
    "litert": {"int8": 1.0, "int4": 0.5 + 2 / 32, "fp16": 2.0, "fp32": 4.0},  # int8/int4: per-channel, block 32
    "llama.cpp": {"int8": 34 / 32, "int4": 18 / 32, "fp16": 2.0, "fp32": 4.0},  # Q8_0, Q4_0
    "pocketlm": {"int8": 34 / 32, "int4": 18 / 32, "fp16": 2.0, "fp32": 4.0},
    "executorch": {"int8": 1.0, "int4": 0.5 + 2 / 32, "fp16": 2.0, "fp32": 4.0},
}
# float32 caches in XNNPack's graphs; F16 in llama.cpp and pocketlm
_KV_BYTES = {"litert": 4, "executorch": 4, "llama.cpp": 2, "pocketlm": 2}


def _check(runtime: str, weights: str) -> None:
    if runtime not in _ALL_RUNTIMES:
        raise ValueError(f"runtime {runtime!r} is not modelled; runtimes: {', '.join(RUNTIMES)}")
    if weights not in WEIGHT_TYPES:
        raise ValueError(f"weights {weights!r} is not modelled; weight types: {', '.join(WEIGHT_TYPES)}")


def file_bytes(shape: ModelShape, runtime: str, weights: str) -> int:
    """The model's weights as the runtime's file stores them (the file's own figure when the shape has one)."""
    if shape.file_bytes:
        return shape.file_bytes
    return int(shape.parameters * _WEIGHT_BYTES[runtime][weights])


# positions a sliding-window layer's ring holds beyond its window: a prompt batch's keys are written before its
# queries attend, so llama.cpp's SWA cache holds window + n_ubatch (512) and pocketlm's C engine window + n_batch - 1
# (n_batch 256);
# LiteRT-LM keeps rings of the window itself ("ringbuffers for local attention")
_RING_EXTRA = {"litert": 0, "llama.cpp": 512, "pocketlm": 255, "executorch": 0}


def ring_positions(shape: ModelShape, runtime: str, layer: int, cache_length: int) -> int:
    """Positions the runtime keeps for a layer at this cache length: the whole cache, or a sliding-window
    layer's ring."""
    if layer in shape.window_layers and shape.window:
        return min(cache_length, shape.window + _RING_EXTRA.get(runtime, 0))
    return cache_length


def kv_positions_read(shape: ModelShape, runtime: str, position: float, cache_length: int) -> float:
    """KV positions a step at `position` reads, summed over layers: LiteRT reads its whole fixed cache in every
    layer (a sliding-window layer: its whole ring); the others the filled positions (a sliding-window layer at
    most its window)."""
    if runtime == "litert":
        return sum(ring_positions(shape, runtime, layer, cache_length) for layer in range(shape.n_layers))
    total = 0.0
    for layer in range(shape.n_layers):
        filled = min(position, cache_length)
        total += min(filled, shape.window) if layer in shape.window_layers else filled
    return total


def kv_cache_bytes(shape: ModelShape, runtime: str, max_tokens: int) -> int:
    """The KV cache the runtime allocates for max_tokens positions (LiteRT: every cache copy it holds), with
    sliding-window layers holding their ring only."""
    from ..model.info import kv_bytes_per_token

    per_position = kv_bytes_per_token(_KVCfg(shape), "F32" if _KV_BYTES[runtime] == 4 else "F16") / shape.n_layers
    copies = CONSTANTS["litert.kv_copies"].value if runtime == "litert" else 1
    positions = sum(ring_positions(shape, runtime, layer, max_tokens) for layer in range(shape.n_layers))
    return int(copies * per_position * positions)


@dataclass(frozen=True)
class _KVCfg:  # what model.info.kv_bytes_per_token reads of a config
    shape: ModelShape

    @property
    def n_layers(self):
        return self.shape.n_layers

    @property
    def n_kv_heads(self):
        return 1

    @property
    def head_dim(self):
        return self.shape.kv_dim


# -- the estimate ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeEstimate:
    profile: str
    runtime: str
    fits: bool
    memory_bytes: int
    memory_parts: dict
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    time_to_first_token_s: float

    def as_dict(self) -> dict:
        return {"profile": self.profile, "runtime": self.runtime, "fits": self.fits,
                "memory_bytes": self.memory_bytes, "memory_parts": dict(self.memory_parts),
                "prefill_tokens_per_s": self.prefill_tokens_per_s, "decode_tokens_per_s": self.decode_tokens_per_s,
                "time_to_first_token_s": self.time_to_first_token_s}


def per_core_slowdown(profile, runtime: str = "llama.cpp") -> float:
    """How much longer the phone's core takes than the host's for the same fixed work: the per-core fp32 rate of
    the host the runtime's constants were measured on (RUNTIME_HOST) over the profile's (peak_fp32_gflops of
    `threads` cores, a core)."""
    host = HOSTS[RUNTIME_HOST.get(runtime, "zen4")]
    return host["fp32_gflops_per_core"] / (profile.peak_fp32_gflops / profile.threads)


def runtime_memory(shape: ModelShape, runtime: str, weights: str, max_tokens: int,
                   weight_cache: bool = True, prefill_signatures=LITERT_PREFILL_SIGNATURES) -> dict[str, int]:
    """Resident bytes by part. LiteRT: with XNNPack's weight cache (LiteRT-LM's cache_dir; MediaPipe's
    benchmarks say where it is on) the packed weights are a mapped file and the graph's own weight pages are
    dropped once packed, so the weights count once; without it the mapped graph and the packed copy both stay.
    A LiteRT prefill's activations are those of its longest signature's run."""
    _check(runtime, weights)
    w = file_bytes(shape, runtime, weights)
    parts = {"weights": w}
    if runtime in ("litert", "executorch") and not weight_cache:
        parts["packed weights"] = int(shape.matmul_params * _WEIGHT_BYTES[runtime][weights])
    parts["KV cache"] = kv_cache_bytes(shape, runtime, max_tokens)
    if runtime == "litert":
        chunk = max(prefill_signatures)
    else:
        chunk = int(CONSTANTS[f"{runtime}.prefill_chunk"].value)
    parts["activations"] = min(max_tokens, chunk) * shape.activation_bytes_per_token + 4 * shape.vocab_size
    parts["runtime"] = int(CONSTANTS["runtime_bytes.litert" if runtime == "litert" else "runtime_bytes.other"].value)
    return parts


def _peak(profile, weights: str) -> float:
    return (profile.peak_int8_gops if weights in ("int8", "int4") else profile.peak_fp32_gflops) * 1e9


def _fixed_s(profile, shape: ModelShape, runtime: str, k: dict) -> float:
    """The runtime's fixed cost of one pass over the layers: the host's per-layer cost carried by the per-core
    speed, times the thread-synchronisation factor (XNNPack's runtimes)."""
    return shape.n_layers * k[f"{runtime}.layer_s_host"] * k.get(f"{runtime}.sync_factor", 1.0) * \
        per_core_slowdown(profile, runtime)


def _on_phone_threads(profile, runtime: str) -> float:
    """Host seconds of work XNNPack splits over its threads -> seconds on the phone's `threads` cores."""
    return per_core_slowdown(profile, runtime) / profile.threads


def decode_step_s(profile, shape: ModelShape, runtime: str, weights: str, position: float, cache_length: int,
                  k: dict) -> float:
    """One decode step at `position`: its bytes at the phone's bandwidth, its matrix-vector products, its
    attention, and the runtime's fixed cost a layer. LiteRT's attention is measured as host time per byte of the
    whole F32 cache it updates and reads (litert.kv_byte_s_host), split over the phone's threads."""
    wb = _WEIGHT_BYTES[runtime][weights]
    kv = kv_positions_read(shape, runtime, position, cache_length)
    kv_bytes = kv * shape.kv_dim * 2 * _KV_BYTES[runtime]
    gemv = 2 * shape.matmul_params / (_peak(profile, weights) * k[f"{runtime}.gemv_efficiency"])
    if runtime == "litert":
        read = shape.matmul_params * wb + shape.hidden_size * wb
        attention = kv_bytes * k["litert.kv_byte_s_host"] * _on_phone_threads(profile, runtime)
    else:
        read = shape.matmul_params * wb + shape.hidden_size * wb + kv_bytes
        attention = 2 * 2 * kv * shape.q_dim / (profile.peak_fp32_gflops * 1e9 *
                                                k[f"{runtime}.attention_efficiency"])
    memory = read / (profile.memory_bandwidth_gbps * 1e9)
    return memory + gemv + attention + _fixed_s(profile, shape, runtime, k)


def prefill_s(profile, shape: ModelShape, runtime: str, weights: str, prompt_tokens: int, cache_length: int,
              k: dict, prefill_signatures=LITERT_PREFILL_SIGNATURES) -> float:
    """A prompt's prefill, in the runtime's chunks: each chunk streams the weights once and pays the fixed costs
    once, multiplies every token, and attends (LiteRT: each token over the whole cache, at the host's measured
    time per token, cached position and query element, litert.attention_prefill_s_host, split over the phone's
    threads). LiteRT runs the prompt as LiteRT-LM's work groups over the graph's prefill signatures
    (litert_work_groups), each computing its signature's whole length, padding included. LiteRT's prefill
    signatures compute no logits, so the classifier is multiplied once, for the first decode step, not per
    prompt token."""
    if runtime == "litert":
        groups = litert_work_groups(prompt_tokens, prefill_signatures)
        n_chunks, computed = len(groups), sum(length for length, _ in groups)
    else:
        n_chunks, computed = math.ceil(prompt_tokens / int(k[f"{runtime}.prefill_chunk"])), prompt_tokens
    wb = _WEIGHT_BYTES[runtime][weights]
    multiplied = shape.n_layers * shape.layer_params if runtime == "litert" else shape.matmul_params
    stream = n_chunks * multiplied * wb / (profile.memory_bandwidth_gbps * 1e9)
    gemm = 2 * multiplied * computed / (_peak(profile, weights) * k[f"{runtime}.gemm_efficiency"])
    if runtime == "litert":
        positions = sum(ring_positions(shape, runtime, layer, cache_length) for layer in range(shape.n_layers))
        attention = computed * positions * shape.q_dim * k["litert.attention_prefill_s_host"] * \
            _on_phone_threads(profile, runtime)
    else:  # causal: token i attends over i positions
        kv = sum(kv_positions_read(shape, runtime, i + 1, cache_length) for i in range(0, prompt_tokens, 64)) * \
            min(64, prompt_tokens)
        attention = 2 * 2 * kv * shape.q_dim / (profile.peak_fp32_gflops * 1e9 *
                                                k[f"{runtime}.attention_efficiency"])
    return stream + gemm + attention + n_chunks * _fixed_s(profile, shape, runtime, k)


def estimate_runtime(profile, shape: ModelShape, weights: str, runtime: str, max_tokens: int,
                     prompt_tokens: int = 128, decode_tokens: int = 128, weight_cache: bool = True,
                     overrides: dict[str, float] | None = None,
                     prefill_signatures=LITERT_PREFILL_SIGNATURES) -> RuntimeEstimate:
    """Speed and memory of `shape` with `weights` on `runtime` on the phone `profile`, with a KV cache of
    max_tokens (LiteRT: the graph's fixed cache length): prefill tok/s over prompt_tokens, decode tok/s over
    decode_tokens after it, time to the first token (the prefill and one decode step). prefill_signatures are a
    LiteRT graph's prefill lengths (a file's own; litert-torch's default set when not given)."""
    _check(runtime, weights)
    prefill_signatures = tuple(prefill_signatures)
    if not prefill_signatures or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                     for n in prefill_signatures):
        raise ValueError(f"prefill_signatures must be positive integers, got {prefill_signatures!r}")
    for name, v in (("max_tokens", max_tokens), ("prompt_tokens", prompt_tokens), ("decode_tokens", decode_tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if prompt_tokens + decode_tokens > max_tokens:
        raise ValueError(f"prompt_tokens {prompt_tokens} + decode_tokens {decode_tokens} are more than max_tokens "
                         f"{max_tokens}")
    k = constants(overrides)
    pre = prefill_s(profile, shape, runtime, weights, prompt_tokens, max_tokens, k, prefill_signatures)
    mid = prompt_tokens + decode_tokens / 2
    step = decode_step_s(profile, shape, runtime, weights, mid, max_tokens, k)
    first = decode_step_s(profile, shape, runtime, weights, prompt_tokens, max_tokens, k)
    parts = runtime_memory(shape, runtime, weights, max_tokens, weight_cache, prefill_signatures)
    total = sum(parts.values())
    return RuntimeEstimate(profile.name, runtime, total <= profile.app_memory_budget, total, parts,
                           prompt_tokens / pre, 1.0 / step, pre + first)


def weights_of_model(model) -> str:
    """The weight type most of a loaded model's parameters are stored in, as the estimate names it."""
    from ..model.info import weight_types

    top = next(iter(weight_types(model)), "F32")
    for prefix, name in (("Q8", "int8"), ("Q4", "int4"), ("Q5", "int4"), ("F16", "fp16"), ("BF16", "fp16"),
                         ("F32", "fp32")):
        if top.startswith(prefix):
            return name
    raise ValueError(f"weights of type {top} are not modelled; weight types: {', '.join(WEIGHT_TYPES)}")


def fit_profiles(shape: ModelShape, weights: str, runtime: str, max_tokens: int, prompt_tokens: int = 128,
                 decode_tokens: int = 128, profiles=None, prefill_signatures=LITERT_PREFILL_SIGNATURES,
                 weight_cache: bool = True) -> list[RuntimeEstimate]:
    """estimate_runtime on every profile (default: every shipped one), what `pocketlm fit` prints."""
    from . import list_profiles, load_profile

    chosen = [p if not isinstance(p, str) else load_profile(p) for p in (profiles or list_profiles())]
    return [estimate_runtime(p, shape, weights, runtime, max_tokens, prompt_tokens, decode_tokens, weight_cache,
                             prefill_signatures=prefill_signatures) for p in chosen]
