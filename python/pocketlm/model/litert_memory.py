"""What a LiteRT run holds resident, by the parts a device budget counts:
the mapped graph, LiteRT's runtime, and per session the KV cache tensors,
XNNPack's packed weights and the activations, read from the graph and from
the opened model's own figures. It opens and runs nothing (engine/litert.py
does); device/ and the engines consult it.
"""

from __future__ import annotations

from .litert_model import LiteRTGraph

# -- memory ------------------------------------------------------------------------------
# What a LiteRT run holds resident, by part. Measured on x86-64 with litert-lm-api 0.18.1's liblitert-lm.so
# (XNNPack delegate, no weights cache) from the process's RSS and RssAnon / RssFile (/proc/self/status) and an
# LD_PRELOAD trace of its allocations, around Engine creation, each session's creation and its first run, on
# tests/fixtures/litert's llama-tiny files and on Llamas exported by litert-torch 0.10 (int8
# dynamic_wi8_afp32 and F32, hidden 512 x 8 layers x vocab 4096, hidden 768 x 6 layers x vocab 8192; prefill
# 8 and 32, cache 256). tests/litert/test_litert_device.py measures it again.
#   - the mapped graph (the engine's "weights"): the file's TFLite range, whose pages become resident as LiteRT
#     reads the flatbuffer's tables and XNNPack the weights it packs (RssFile grew by 28.8 MB of a 32.0 MB
#     graph at the first session: all but the embedding's rows, read as tokens look them up). A .litertlm's
#     other sections are not mapped.
#   - LITERT_RUNTIME_BYTES (the engine's "runtime"), once a process;
#   - per session, each its own TFLite interpreter: the KV cache tensors (every signature's input and output
#     caches: plm_lrt_state_bytes, the arenas the trace shows), XNNPack's packed weights (packed_weight_bytes),
#     and the activations: the executor's other buffers (masks, token lists, logits), the graph's intermediate
#     tensors at their peak, and LITERT_OPERATOR_BYTES for every operator of the graph.

# liblitert-lm.so once loaded, 43.7-50.4 MiB (39-41 of them its code pages: what the loader touches varies from
# one process to another), and its code that opening a first graph and running it reach, 4-5 MiB more; the
# same for every graph measured
LITERT_RUNTIME_BYTES = 48 * 2**20
# what a session's interpreter holds besides its tensors and packed weights (TFLite's and XNNPack's objects
# for the operators of every subgraph), an operator: 0.66-0.72 MB for llama-tiny's 317 operators, 2.3-3.4 MB
# for hidden 512's 1337, 3.8 MB for hidden 768's 968 (1.7-3.9 KB an operator)
LITERT_OPERATOR_BYTES = 2560
# XNNPack's packed form of a FULLY_CONNECTED / BATCH_MATMUL / CONV filter, by the filter's TFLite type:
# (bytes a weight element, bytes an output channel). Measured (the allocation trace matches to the byte):
# int8 per-channel weights with float activations are packed for its qd8-f32-qc8w kernels, an int8 a weight
# plus an int32 sum, float scale and float bias a channel; float32 filters are packed as float32 with a float
# bias. Not measured: fp16 / bf16 filters are taken to be unpacked to float32 as XNNPack runs them, int4 ones
# to keep half a byte a weight and a 2-byte scale a block of 32 (XNNPack's qb4w form). Other types: as float32.
_PACKED = {"INT8": (1.0, 12), "FLOAT32": (4.0, 4), "FLOAT16": (4.0, 4), "BFLOAT16": (4.0, 4), "INT4": (0.5625, 12)}
# the operators whose constant filter (the input at this index) XNNPack packs
_PACKED_OPS = {"FULLY_CONNECTED": 1, "BATCH_MATMUL": 1, "CONV_2D": 1, "DEPTHWISE_CONV_2D": 1}
_ELEMENT_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "BFLOAT16": 2, "INT32": 4, "UINT32": 4, "INT64": 8, "UINT64": 8,
                  "INT16": 2, "UINT16": 2, "INT8": 1, "UINT8": 1, "INT4": 1, "BOOL": 1, "FLOAT64": 8,
                  "COMPLEX64": 8, "COMPLEX128": 16}


class LiteRTMemory:
    """What the graph's tensors add up to, for the memory a LiteRT session holds (read from the graph, once)."""

    def __init__(self, packed_weight_bytes: int, intermediate_bytes: int, kv_tensor_bytes: int, n_operators: int):
        self.n_operators = n_operators  # over every subgraph (signatures and the decompositions of composites)
        self.packed_weight_bytes = packed_weight_bytes  # XNNPack's packed filters, every subgraph's own copy
        self.intermediate_bytes = intermediate_bytes  # each subgraph's intermediate tensors at their peak, summed
        self.kv_tensor_bytes = kv_tensor_bytes  # the KV caches as the executor holds them: in and out, a signature


def graph_memory(graph: LiteRTGraph) -> LiteRTMemory:
    """The graph's packed weights, intermediates and KV tensors (cached on the graph).

    XNNPack, without a weights cache, packs every filter once for each operator of each subgraph that uses it:
    a prefill_N and the decode signature each hold their own copy (the allocation trace shows 3 copies of every
    layer's filters for prefill_8, prefill_32 and decode, the classifier once, in decode; a prefill's last layer
    keeps only its K and V projections, the rest being no output of it)."""
    cached = getattr(graph, "_memory", None)
    if cached is not None:
        return cached
    from ..model.tflite_file import _TENSOR_EXTERNAL_BUFFER, _Source, require_tflite

    tflite = require_tflite()
    src = _Source(graph.path, graph.offset, graph.size, graph.path)
    try:
        mem = _walk(tflite, src.buf, graph, _TENSOR_EXTERNAL_BUFFER)
    finally:
        src.close()
    graph._memory = mem
    return mem


def _walk(tflite, buf, graph: LiteRTGraph, external_slot: int) -> LiteRTMemory:
    from flatbuffers.number_types import Uint32Flags

    m = tflite.Model.GetRootAsModel(buf, 0)
    op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    codes = [op_names.get(max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode()))
             for i in range(m.OperatorCodesLength())]
    type_names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    const_buffers = {}

    def is_const(t) -> bool:
        b = t.Buffer()
        if b not in const_buffers:
            bf = m.Buffers(b) if b else None
            const_buffers[b] = bool(bf is not None and (bf.DataLength() or bf.Offset() > 1))
        return const_buffers[b] or bool(t._tab.GetSlot(external_slot, 0, Uint32Flags))  # an external buffer

    def elements(t) -> int:
        n = 1
        for d in (t.ShapeAsNumpy().tolist() if t.ShapeLength() else []):
            n *= max(int(d), 1)
        return n

    packed, intermediates, n_ops = 0, 0, 0
    for g in range(m.SubgraphsLength()):
        sg = m.Subgraphs(g)
        n_ops += sg.OperatorsLength()
        outputs = set(sg.OutputsAsNumpy().tolist()) if sg.OutputsLength() else set()
        born, last, size = {}, {}, {}
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            ins = op.InputsAsNumpy().tolist() if op.InputsLength() else []
            code = codes[op.OpcodeIndex()]
            if code in _PACKED_OPS and len(ins) > _PACKED_OPS[code] and ins[_PACKED_OPS[code]] >= 0:
                f = sg.Tensors(ins[_PACKED_OPS[code]])
                if is_const(f):
                    per_weight, per_channel = _PACKED.get(type_names.get(f.Type()), _PACKED["FLOAT32"])
                    shape = f.ShapeAsNumpy().tolist() if f.ShapeLength() else [1]
                    channels = shape[-1] if code == "BATCH_MATMUL" else shape[0]
                    packed += int(elements(f) * per_weight) + int(channels) * per_channel
            for t in ins:
                if t in born:
                    last[t] = o
            for t in (op.OutputsAsNumpy().tolist() if op.OutputsLength() else []):
                if t >= 0 and t not in outputs and t not in born:
                    tensor = sg.Tensors(t)
                    born[t], last[t] = o, o
                    size[t] = elements(tensor) * _ELEMENT_BYTES.get(type_names.get(tensor.Type()), 4)
        # the intermediates live at once, at the worst operator: what an arena or XNNPack's workspace must hold
        change = [0] * (sg.OperatorsLength() + 1)
        for t, o in born.items():
            change[o] += size[t]
            change[last[t] + 1] -= size[t]
        live = peak = 0
        for c in change:
            live += c
            peak = max(peak, live)
        intermediates += peak
    kv = graph.tflite.kv_cache
    cache_set = kv.n_layers * 4 * (_product(kv.k_shape) + _product(kv.v_shape))  # F32 K and V of every layer
    runners = min(len(graph.prefill_lengths), 16) + 1  # the executor's prefill_N (at most 16) and decode
    return LiteRTMemory(packed, intermediates, 2 * runners * cache_set, n_ops)


def _product(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def session_memory(graph: LiteRTGraph, native, max_tokens: int) -> list[tuple[str, int]]:
    """What one session holds, by the parts the device budget counts: its KV cache tensors (the graph's whole
    cache, whatever maxTokens is), XNNPack's packed weights, and the activations. native: the opened model,
    whose session figure (plm_session_bytes) is what the C session allocates; without it, the executor's
    buffers are counted from the graph."""
    mem = graph_memory(graph)
    if native is not None:
        total = native.session_bytes(max_tokens, graph.cfg.kv_type)
    else:  # the same buffers as plm_lrt_state_bytes: caches, a mask [T, C] and T tokens and positions a signature
        c, lengths = graph.cache_length, graph.prefill_lengths[-16:] + [1]
        mask = any(s.input("mask") is not None for s in graph.tflite.signatures if s.kind == "decode")
        total = mem.kv_tensor_bytes + sum(8 * t + (4 * t * c if mask else 0) for t in lengths) + \
            8 * max_tokens + 8 * graph.vocab_size
    return [("KV cache", mem.kv_tensor_bytes), ("packed weights", mem.packed_weight_bytes),
            ("activations", total - mem.kv_tensor_bytes + mem.intermediate_bytes +
             mem.n_operators * LITERT_OPERATOR_BYTES)]


def mapped_bytes(graph: LiteRTGraph, native) -> int:
    """The graph's bytes as the executor holds them: its range of the file mapped (plm_model_weight_bytes), or,
    where the range does not start 16-byte aligned (a .task's stored entry may start anywhere), an aligned
    copy instead, the map being released (plm_model_owned_bytes counts the copy); and the executor's model."""
    if native is None:
        return graph.size
    return native.weight_bytes + native.owned_bytes - (graph.size if graph.offset % 16 else 0)
