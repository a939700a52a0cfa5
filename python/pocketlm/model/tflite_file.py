"""A TFLite model (.tflite, or the TFLiteModel section of a .litertlm, or a
.task's TF_LITE_PREFILL_DECODE entry) read with TFLite's own flatbuffer schema
code (the `tflite` package, pure Python): its signatures, the KV cache they
carry, the weights' storage types and the ops the graph needs. It runs
nothing and needs no LiteRT runtime; every offset, length and index the
schema code would follow blindly is checked first (flatbuffer_bounds.py), so
a truncated or corrupted graph is a ModelFileError naming the file and part.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelFileError, reading
from .flatbuffer_bounds import Bounds

LITERT_EXTRA = "pip install pocketlm[litert]"
TFLITE_IDENTIFIER = b"TFL3"  # file_identifier of schema.fbs, at bytes 4-8

# Fields of TFLite's schema.fbs newer than the `tflite` 2.18 package: the
# vtable slots (4 + 2 * field id) of Tensor.external_buffer, Model's
# external_buffer_groups / external_buffers, the tables ExternalBuffer and
# ExternalBufferGroup, and QuantizationDetails.BlockwiseQuantization (union
# member 2, BlockwiseQuantization { scales, zero_points, block_size }). They
# are read with flatbuffers' Table, at the schema's slots, checked as the rest.
_TENSOR_EXTERNAL_BUFFER = 24
_MODEL_EXTERNAL_BUFFER_GROUPS, _MODEL_EXTERNAL_BUFFERS = 20, 22
_EXTERNAL_BUFFER = dict(id=4, group=6, offset=8, length=10)
_EXTERNAL_BUFFER_GROUP_NAME = 4
_DETAILS_BLOCKWISE, _BLOCKWISE_BLOCK_SIZE = 2, 8
# TensorType values after the 2.18 package's last (BFLOAT16 = 18)
_NEWER_TYPES = {19: "INT2", 20: "UINT4", 21: "FLOAT8_E4M3FN", 22: "FLOAT8_E5M2"}
# element types that hold weights (parameters); INT32/INT64/BOOL/STRING constants are shapes, indices, tables
_WEIGHT_TYPES = {"FLOAT32", "FLOAT16", "BFLOAT16", "FLOAT64", "INT8", "UINT8", "INT16", "INT4", "INT2", "UINT4",
                 "FLOAT8_E4M3FN", "FLOAT8_E5M2"}
_STORAGE_NAMES = {"FLOAT32": "float32", "FLOAT16": "fp16", "BFLOAT16": "bf16", "FLOAT64": "float64"}
# ops of TensorFlow Text (tensorflow_text), which a Flex delegate alone does not bring
TF_TEXT_OPS = {"RegexSplitWithOffsets", "CaseFoldUTF8", "NormalizeUTF8", "NormalizeUTF8WithOffsetsMap",
               "WhitespaceTokenizeWithOffsets", "WhitespaceTokenizeWithOffsetsV2", "WordpieceTokenizeWithOffsets",
               "UnicodeScriptTokenizeWithOffsets", "SentencepieceOp", "SentencepieceTokenizeOp",
               "SentencepieceDetokenizeOp", "SplitMergeTokenizeWithOffsets", "FastWordpieceTokenizeWithOffsets",
               "FastBertNormalize", "ByteSplitWithOffsets", "TFText>FastWordpieceTokenizer",
               "TFText>WhitespaceTokenizer", "TFText>NgramsStringJoin", "TFText>RaggedTensorToTensor"}


def require_tflite():
    """The `tflite` schema package, or a ModelFileError saying how to get it."""
    try:
        import tflite
    except ImportError:
        raise ModelFileError(f"reading a TFLite model needs TFLite's schema code: {LITERT_EXTRA}") from None
    return tflite


@dataclass
class TensorSpec:
    name: str  # the signature's name for it (kv_cache_k_0, logits, ...)
    shape: tuple[int, ...]
    dtype: str  # numpy-style: float32, int32, int8, bytes (TFLite STRING) ...


@dataclass
class Signature:
    name: str  # signature_key
    subgraph: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    kind: str  # "prefill", "decode", "whole generation" (text in, text out) or "other"

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)


@dataclass
class KVCacheLayout:
    n_layers: int  # kv_cache_k_{i} / kv_cache_v_{i} pairs
    cache_length: int  # positions the cache holds
    dtype: str
    k_shape: tuple[int, ...]
    v_shape: tuple[int, ...]
    k_axes: tuple[str, ...]  # a name per axis: batch, kv_heads, cache_length, head_dim
    v_axes: tuple[str, ...]
    n_kv_heads: int
    head_dim: int

    @property
    def v_transposed(self) -> bool:
        """V keeps head_dim before cache_length ([1, h, d, C]), the transpose of K's [1, h, C, d]."""
        return self.v_axes.index("head_dim") < self.v_axes.index("cache_length")

    def describe(self) -> str:
        k = f"K {list(self.k_shape)} [{', '.join(self.k_axes)}]"
        v = f"V {list(self.v_shape)} [{', '.join(self.v_axes)}]" + (" (transposed)" if self.v_transposed else "")
        return (f"{self.n_layers} layers, {self.cache_length} positions, {self.dtype}, {self.n_kv_heads} KV heads "
                f"of {self.head_dim}: {k}, {v}")


@dataclass
class TFLiteModel:
    where: str  # the file (and section or entry) it was read from
    size: int  # bytes of the model
    schema_version: int
    description: str
    n_subgraphs: int
    signatures: list[Signature]
    prefill_lengths: list[int]  # tokens per run of each prefill signature (its input_pos length), ascending
    decode: bool  # a decode signature is there
    kv_cache: KVCacheLayout | None
    vocab_size: int | None  # decode's logits, last axis
    weights: dict[str, int]  # storage ("int8 per-channel", "int4 blockwise 32", "fp16", "float32"...) -> parameters
    weight_bytes: int  # bytes of those weights held in the model (each buffer once)
    external_parameters: int  # parameters whose bytes live outside the model (external buffers)
    external_groups: list[str]  # the external buffer groups' names
    external_end: int  # where the last external buffer ends (offset + length; 0: none), in its weights file
    ops: dict[str, int]  # builtin op -> operators using it, over every subgraph
    flex_ops: list[str]  # select TensorFlow ops (custom "Flex..." codes), without the prefix
    custom_ops: list[str]  # other custom ops
    composites: dict[str, int]  # STABLEHLO_COMPOSITE names -> uses
    metadata: dict[str, str] = field(default_factory=dict)  # Model.metadata entries that are text
    # the shape of each weight (the tensors counted in `weights`, each buffer once), in the order the graph lists
    # them: where a caller finds the embedding table and the layers' matrices
    weight_shapes: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def parameter_count(self) -> int:
        return sum(self.weights.values())

    @property
    def whole_generation(self) -> list[str]:
        """Signatures that take text and answer text (the graph tokenizes and generates inside)."""
        return [s.name for s in self.signatures if s.kind == "whole generation"]

    @property
    def tf_text_ops(self) -> list[str]:
        return [op for op in self.flex_ops if op in TF_TEXT_OPS]


class _Source:
    """The model's bytes: a read-only map of the file (or of all of `data`), and the model's place in it."""

    def __init__(self, source, offset: int, size: int | None, name: str | None):
        self._map = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            whole = memoryview(source)
            self.where = name or "TFLite model"
        else:
            path = Path(source)
            self.where = name or str(path)
            with open(path, "rb") as f:
                total = os.fstat(f.fileno()).st_size
                if total == 0:
                    raise ModelFileError(f"{self.where}: the file is empty")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            whole = memoryview(self._map)
        total = len(whole)
        if size is None:
            size = total - offset
        if offset < 0 or size < 0 or offset > total or size > total - offset:
            self.close(whole)
            raise ModelFileError(f"{self.where}: the model (at {offset}, {size} bytes) runs past the end of the "
                                 f"file ({total} bytes)")
        self.whole = whole
        self.buf = whole[offset:offset + size]

    def close(self, *views) -> None:
        """Lets the map go; a view still exported (a traceback holding a NumPy view) leaves it to the collector."""
        try:
            for v in (*views, getattr(self, "buf", None), getattr(self, "whole", None)):
                if v is not None:
                    v.release()
            if self._map is not None:
                self._map.close()
        except BufferError:
            pass
        self._map = None


def is_tflite(head: bytes) -> bool:
    """Whether bytes (a file's first 8 at least) start a TFLite flatbuffer: "TFL3" at bytes 4-8."""
    return len(head) >= 8 and bytes(head[4:8]) == TFLITE_IDENTIFIER


def read_tflite(source, offset: int = 0, size: int | None = None, name: str | None = None) -> TFLiteModel:
    """The TFLite model at `offset` (`size` bytes; None: to the end) of a file
    path or of bytes. `name` is what messages call it (default: the path),
    e.g. "x.litertlm: section 3 (TFLiteModel)". Reads the graph's tables
    only: buffers are located and checked, never copied."""
    tflite = require_tflite()
    src = _Source(source, offset, size, name)
    try:
        with reading(src.where, "TFLite flatbuffer"):
            return _read(tflite, src.buf, src.where)
    finally:
        src.close()


def _read(tflite, buf, where: str) -> TFLiteModel:
    from flatbuffers.number_types import Uint32Flags

    n = len(buf)
    if n < 8:
        raise ModelFileError(f"{where}: {n} bytes are too few for a TFLite model")
    if not is_tflite(buf[:8]):
        raise ModelFileError(f"{where}: not a TFLite model (bytes 4-8 are {bytes(buf[4:8])!r}, not "
                             f"{TFLITE_IDENTIFIER!r})")
    b = Bounds(buf, where)
    m = tflite.Model()
    m.Init(buf, b.root("the model table"))
    b.table(m, "the model table")
    version = m.Version()
    description = b.string(m, 10, "Model.description") or ""

    n_buffers = b.vector(m, 12, 4, "Model.buffers")
    n_subgraphs = b.vector(m, 8, 4, "Model.subgraphs")
    if n_subgraphs == 0:
        raise ModelFileError(f"{where}: the model has no subgraph")

    # operator codes: builtin names, Flex (select TF) and other custom ops
    op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(b.vector(m, 6, 4, "Model.operator_codes")):
        oc = b.table(m.OperatorCodes(i), f"operator code {i}")
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())  # TFLite's GetBuiltinCode
        custom = b.string(oc, 6, f"operator code {i}'s custom_code")
        codes.append(("CUSTOM", custom) if code == tflite.BuiltinOperator.CUSTOM else
                     (op_names.get(code, f"builtin {code}"), None))

    # buffers: where each lies (inside the flatbuffer, after it at offset/size, or nowhere)
    def buffer_bytes(i: int, what: str) -> int:
        bf = b.table(m.Buffers(i), f"buffer {i} ({what})")
        data = b.vector(bf, 4, 1, f"buffer {i} ({what})")
        off, length = bf.Offset(), bf.Size()
        if off > 1:  # stored after the flatbuffer, at an offset from the model's start
            if off > n or length > n - off:
                raise ModelFileError(f"{where}: buffer {i} ({what}) at {off}, {length} bytes, runs past the end of "
                                     f"the model ({n} bytes)")
            return length
        return data

    external = _external_buffers(m, b)
    ext_groups = [name for name in external["groups"] if name]

    signatures, ops, composites = [], Counter(), Counter()
    flex, custom = set(), set()
    weights, weight_bytes, external_params = Counter(), 0, 0
    weight_shapes = []
    seen_buffers, seen_external = set(), set()
    type_names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")} | _NEWER_TYPES
    subgraph_tensors = []
    for g in range(n_subgraphs):
        sg = b.table(m.Subgraphs(g), f"subgraph {g}")
        sg_name = b.string(sg, 12, f"subgraph {g}'s name") or str(g)
        n_tensors = b.vector(sg, 4, 4, f"subgraph {sg_name}'s tensors")
        subgraph_tensors.append(n_tensors)
        for t in range(n_tensors):
            what = f"subgraph {sg_name}, tensor {t}"
            tensor = b.table(sg.Tensors(t), what)
            shape = _shape(tensor, b, what)
            tname = type_names.get(tensor.Type(), f"type {tensor.Type()}")
            buf_index = tensor.Buffer()
            ext_id = tensor._tab.GetSlot(_TENSOR_EXTERNAL_BUFFER, 0, Uint32Flags)
            if ext_id:  # bytes in an external buffer (a weights file or section)
                if ext_id not in external["buffers"]:
                    raise ModelFileError(f"{where}: {what} refers to external buffer {ext_id}, which the model "
                                         f"does not list")
                if ext_id in seen_external:
                    continue
                seen_external.add(ext_id)
                stored = None
            else:
                b.index(buf_index, max(n_buffers, 1), what, "buffer")
                if buf_index == 0 or buf_index in seen_buffers:
                    continue  # no data (an activation), or a buffer another subgraph's tensor already counted
                stored = buffer_bytes(buf_index, what)
                if stored == 0:
                    continue
                seen_buffers.add(buf_index)
            if tname not in _WEIGHT_TYPES:
                continue
            count = 1
            for d in shape:
                count *= max(d, 0)
            weights[_storage(tflite, tensor, tname, b, what)] += count
            weight_shapes.append(shape)
            if stored is None:
                external_params += count
            else:
                weight_bytes += stored
        for o in range(b.vector(sg, 10, 4, f"subgraph {sg_name}'s operators")):
            what = f"subgraph {sg_name}, operator {o}"
            op = b.table(sg.Operators(o), what)
            op_name, custom_code = codes[b.index(op.OpcodeIndex(), len(codes), what, "operator code")]
            ops[op_name] += 1
            if custom_code is not None:
                (flex.add(custom_code[4:]) if custom_code.startswith("Flex") else custom.add(custom_code))
            if op_name == "STABLEHLO_COMPOSITE" and op.BuiltinOptions2Type() == \
                    tflite.BuiltinOptions2.StableHLOCompositeOptions:
                table = op.BuiltinOptions2()
                if table is not None:
                    opts = tflite.StableHLOCompositeOptions()
                    opts.Init(table.Bytes, table.Pos)
                    composites[b.string(b.table(opts, what), 4, f"{what}'s composite name") or "?"] += 1

    for s in range(b.vector(m, 18, 4, "Model.signature_defs")):
        sd = b.table(m.SignatureDefs(s), f"signature {s}")
        key = b.string(sd, 8, f"signature {s}'s key") or f"signature {s}"
        g = b.index(sd.SubgraphIndex(), n_subgraphs, f"signature {key}", "subgraph")
        sg = b.table(m.Subgraphs(g), f"subgraph {g}")
        ios = []
        for slot, kind in ((4, "inputs"), (6, "outputs")):
            specs = []
            for j in range(b.vector(sd, slot, 4, f"signature {key}'s {kind}")):
                what = f"signature {key}, {kind[:-1]} {j}"
                tm = b.table(sd.Inputs(j) if slot == 4 else sd.Outputs(j), what)
                tname = b.string(tm, 4, what) or str(j)
                tensor = b.table(sg.Tensors(b.index(tm.TensorIndex(), subgraph_tensors[g], what, "tensor")), what)
                ttype = type_names.get(tensor.Type(), f"type {tensor.Type()}")
                specs.append(TensorSpec(tname, _shape(tensor, b, what), _dtype(ttype)))
            ios.append(specs)
        signatures.append(Signature(key, g, ios[0], ios[1], _kind(key, *ios)))

    metadata = {}
    for i in range(b.vector(m, 16, 4, "Model.metadata")):
        md = b.table(m.Metadata(i), f"metadata {i}")
        key = b.string(md, 4, f"metadata {i}'s name") or str(i)
        j = b.index(md.Buffer(), max(n_buffers, 1), f"metadata {key}", "buffer")
        bf = b.table(m.Buffers(j), f"buffer {j} (metadata {key})")
        length = b.vector(bf, 4, 1, f"buffer {j} (metadata {key})")
        if 0 < length <= 256:
            raw = bytes(bf.DataAsNumpy().tobytes()).rstrip(b"\0")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if text.isprintable():
                metadata[key] = text

    prefills = sorted({_prefill_length(s) for s in signatures if s.kind == "prefill"} - {None})
    decode = next((s for s in signatures if s.kind == "decode"), None)
    logits = decode.output("logits") if decode else None
    return TFLiteModel(
        where=where, size=n, schema_version=version, description=description, n_subgraphs=n_subgraphs,
        signatures=signatures, prefill_lengths=prefills, decode=decode is not None,
        kv_cache=_kv_cache(signatures, where), vocab_size=logits.shape[-1] if logits and logits.shape else None,
        weights=dict(weights.most_common()), weight_bytes=weight_bytes, external_parameters=external_params,
        external_groups=ext_groups, external_end=max((o + n for _, o, n in external["buffers"].values()), default=0),
        ops=dict(ops.most_common()), flex_ops=sorted(flex), custom_ops=sorted(custom),
        composites=dict(composites.most_common()), metadata=metadata, weight_shapes=weight_shapes)


def _external_buffers(m, b: Bounds) -> dict:
    """Model.external_buffers by id and external_buffer_groups' names (newer schema fields, see above)."""
    from flatbuffers import number_types as nt
    from flatbuffers.table import Table

    def entries(slot: int, what: str):
        for j in range(b.vector(m, slot, 4, what)):
            x = m._tab.Vector(m._tab.Offset(slot)) + 4 * j
            yield j, b.table(Table(m._tab.Bytes, m._tab.Indirect(x)), f"{what} {j}")

    groups = []
    for j, g in entries(_MODEL_EXTERNAL_BUFFER_GROUPS, "Model.external_buffer_groups"):
        groups.append(b.string(g, _EXTERNAL_BUFFER_GROUP_NAME, f"external buffer group {j}'s name"))
    buffers = {}
    for j, t in entries(_MODEL_EXTERNAL_BUFFERS, "Model.external_buffers"):
        ident = t.GetSlot(_EXTERNAL_BUFFER["id"], 0, nt.Uint32Flags)
        group = t.GetSlot(_EXTERNAL_BUFFER["group"], 0, nt.Uint32Flags)
        if groups:
            b.index(group, len(groups), f"external buffer {ident}", "external buffer group")
        buffers[ident] = (group, t.GetSlot(_EXTERNAL_BUFFER["offset"], 0, nt.Uint64Flags),
                          t.GetSlot(_EXTERNAL_BUFFER["length"], 0, nt.Uint64Flags))
    return {"groups": groups, "buffers": buffers}


def _shape(tensor, b: Bounds, what: str) -> tuple[int, ...]:
    rank = b.vector(tensor, 4, 4, f"{what}'s shape")
    return tuple(int(x) for x in tensor.ShapeAsNumpy()) if rank else ()


def _storage(tflite, tensor, tname: str, b: Bounds, what: str) -> str:
    """How a weight is stored: float32, fp16, int8 per-channel, int4 blockwise 32, ..."""
    if tname in _STORAGE_NAMES:
        return _STORAGE_NAMES[tname]
    name = tname.lower()
    q = b.table(tensor.Quantization(), f"{what}'s quantization")
    if q is None:
        return name
    if q.DetailsType() == _DETAILS_BLOCKWISE:
        details = q.Details()
        block = 0
        if details is not None:
            from flatbuffers import number_types as nt

            block = b.table(details, f"{what}'s blockwise quantization").GetSlot(_BLOCKWISE_BLOCK_SIZE, 0,
                                                                                   nt.Int32Flags)
        return f"{name} blockwise {block}" if block else f"{name} blockwise"
    scales = b.vector(q, 8, 4, f"{what}'s quantization scales")
    if scales > 1:
        return f"{name} per-channel"
    return f"{name} per-tensor" if scales == 1 else name


def _dtype(tname: str) -> str:
    return {"STRING": "bytes", "BOOL": "bool"}.get(tname, tname.lower())


def _kind(name: str, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> str:
    if name.startswith("prefill"):
        return "prefill"
    if name.startswith("decode"):
        return "decode"
    if inputs and outputs and all(t.dtype == "bytes" for t in inputs) and any(t.dtype == "bytes" for t in outputs):
        return "whole generation"
    return "other"


def _prefill_length(s: Signature) -> int | None:
    """Tokens one run takes: LiteRT-LM keys its prefill signatures by the length of input_pos."""
    t = s.input("input_pos") or s.input("tokens")
    return t.shape[-1] if t is not None and t.shape else None


def _kv_cache(signatures: list[Signature], where: str) -> KVCacheLayout | None:
    """The cache the decode (else a prefill) signature carries as kv_cache_k_{i} / kv_cache_v_{i} inputs: its
    length is the mask's last axis (else the largest axis of K), and each layout follows from where that
    length sits in K's and V's shapes."""
    sig = next((s for s in signatures if s.kind == "decode"), None) or \
        next((s for s in signatures if s.kind == "prefill"), None)
    if sig is None:
        return None
    ks = sorted((t for t in sig.inputs if t.name.startswith("kv_cache_k_")), key=lambda t: t.name)
    vs = sorted((t for t in sig.inputs if t.name.startswith("kv_cache_v_")), key=lambda t: t.name)
    if not ks or len(ks) != len(vs):
        return None
    k, v = ks[0], vs[0]
    if len(k.shape) != 4 or len(v.shape) != 4:
        return None
    mask = sig.input("mask")
    length = mask.shape[-1] if mask is not None and mask.shape else max(k.shape[1:])
    k_axis = _axis_of(k.shape, length)
    v_axis = _axis_of(v.shape, length)
    if k_axis is None or v_axis is None:
        return None
    k_axes = _axes(k.shape, k_axis, None)
    n_kv_heads, head_dim = k.shape[k_axes.index("kv_heads")], k.shape[k_axes.index("head_dim")]
    v_axes = _axes(v.shape, v_axis, (n_kv_heads, head_dim))
    return KVCacheLayout(len(ks), length, k.dtype, k.shape, v.shape, k_axes, v_axes, n_kv_heads, head_dim)


def _axis_of(shape: tuple[int, ...], length: int) -> int | None:
    """The axis (after batch) of that length; the last such one when several have it."""
    axes = [i for i in range(1, len(shape)) if shape[i] == length]
    return axes[-1] if axes else None


def _axes(shape, seq_axis: int, heads_dim: tuple[int, int] | None) -> tuple[str, ...]:
    """Names of a 4-D cache tensor's axes, given where cache_length is: the two others are kv_heads and head_dim,
    in K's order unless their sizes say otherwise."""
    rest = [i for i in range(1, 4) if i != seq_axis]
    first, second = "kv_heads", "head_dim"
    if heads_dim is not None and heads_dim[0] != heads_dim[1] and shape[rest[0]] == heads_dim[1]:
        first, second = "head_dim", "kv_heads"
    names = ["batch", "", "", ""]
    names[seq_axis], names[rest[0]], names[rest[1]] = "cache_length", first, second
    return tuple(names)
