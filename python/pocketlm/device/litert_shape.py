"""The shape `pocketlm fit --model` estimates a LiteRT file (.litertlm, a TFLite .task, a .tflite) with, read
from its graph: layers and KV width from the cache, vocabulary from the logits, hidden size and parameters from
the weight tensors' shapes, the storage most weights have, the fixed cache length and prefill signatures. It
reads the files with their own schemas (model/litertlm_file, model/tflite_file) and runs nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from ..errors import ModelFileError
from .runtimes import ModelShape

EMBEDDER = "tf_lite_embedder"  # the model_type of a .litertlm's embedding-lookup graph
# a weight storage (tflite_file's names: "int8 per-channel", "int4 blockwise 32", "fp16", "float32", ...), by
# its first word, as the estimate names it; bf16 costs what fp16 does there (2 bytes a weight, the float peak)
_STORAGE = {"int8": "int8", "int4": "int4", "fp16": "fp16", "bf16": "fp16", "float32": "fp32"}


@dataclass(frozen=True)
class LiteRTFit:
    """What `fit` needs of a LiteRT file."""

    shape: ModelShape  # read from the graph (file_bytes: the weights' bytes in the file)
    weights: str  # "int8", "int4", "fp16" or "fp32": the storage most parameters have
    cache_length: int  # the graph's KV cache positions, fixed at export: the most maxTokens it runs
    prefill_signatures: tuple[int, ...]  # tokens per run of each prefill_N signature, ascending
    kind: str  # "litertlm", "task" or "tflite"


def shape_from_litert(path: str | Path) -> LiteRTFit:
    """The estimate's shape of a LiteRT file, from its prefill/decode graph (and a .litertlm's embedder section):

    - n_layers, kv_dim (KV heads x head_dim) from the kv_cache_k_i / kv_cache_v_i inputs; vocab from the logits;
    - hidden_size: the embedding table's width, the [vocab, hidden] weight (a ModelFileError when there is none);
    - tied: only one [vocab, hidden] table; a second is the classifier;
    - layer_params: every weight matrix (tensors with two axes or more longer than 1: norms, biases and scalars
      are not) less the vocabulary tables, over n_layers;
    - q_dim: from the matrices of one layer when they make up exactly one attention (q, k, v and o projections,
      k and v or all three fused) beside one MLP (gate and up, fused or not, and down), and every reading of
      them that does gives the same q width; else hidden_size (the attention of most models). The MLP's width,
      which only the activations' bytes read, comes from the same reading, else from what the layer's
      parameters leave beside such an attention, taken as a gated MLP;
    - window layers: layers whose cache holds fewer positions than the graph's cache (none when all hold it);
    - file_bytes: the weights' bytes in the file, so memory counts the real file.
    """
    from ..model.litert_info import litert_kind

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no model file at {p}")
    kind = litert_kind(p)
    if kind is None:
        raise ModelFileError(f"{p} is not a file LiteRT runs (.litertlm, a TFLite .task or a .tflite)")
    graph, embedder, extra_bytes = _graphs(p, kind)
    kv = graph.kv_cache
    n_layers, kv_dim, vocab = kv.n_layers, kv.n_kv_heads * kv.head_dim, graph.vocab_size
    window_layers, window = _windows(graph, p)

    shapes = [s for g in (graph, embedder) if g is not None for s in g.weight_shapes]
    matrices = [s for s in shapes if sum(d > 1 for d in s) >= 2]
    tables = [s for s in matrices if len(s) == 2 and s[0] == vocab]
    widths = sorted({s[1] for s in tables})
    if not widths:
        raise ModelFileError(f"{p}: no embedding table ([{vocab}, hidden] weight, {vocab} the logits' width) in the "
                             f"graph{' or its embedder section' if embedder is not None else ''}: fit reads the "
                             "hidden size from it")
    if len(widths) > 1 or len(tables) > 2:
        raise ModelFileError(f"{p}: {len(tables)} weights of {vocab} rows ({', '.join(map(str, tables))}): fit "
                             "tells the embedding table and the classifier only as one or two [vocab, hidden] "
                             "tables")
    hidden = widths[0]
    layer_matrices = [s for s in matrices if s not in tables]
    total = sum(_count(s) for s in layer_matrices)
    if total == 0:
        raise ModelFileError(f"{p}: no weight matrices besides the [{vocab}, {hidden}] tables: fit needs the "
                             "layers' parameters")
    layer_params = total // n_layers
    q_dim, intermediate = _attention_and_mlp(layer_matrices, n_layers, hidden, kv_dim)
    if q_dim is None:
        q_dim = hidden
    if intermediate is None:  # a gated MLP beside an attention of q width: what the layer's parameters leave
        intermediate = max(layer_params - 2 * hidden * (q_dim + kv_dim), 0) // (3 * hidden)
    from . import activation_bytes_per_token

    act = activation_bytes_per_token(SimpleNamespace(n_kv_heads=kv.n_kv_heads, head_dim=kv.head_dim,
                                                     hidden_size=hidden, q_dim=q_dim,
                                                     intermediate_size=intermediate))
    file_bytes = graph.weight_bytes + (embedder.weight_bytes if embedder is not None else 0) + extra_bytes
    shape = ModelShape(n_layers, hidden, q_dim, kv_dim, vocab, layer_params, len(tables) == 1, act, window_layers,
                       window, file_bytes)
    return LiteRTFit(shape, _weights(graph, embedder, p), kv.cache_length, tuple(graph.prefill_lengths), kind)


def _graphs(p: Path, kind: str):
    """(the prefill/decode graph, the embedder graph or None, bytes of its weights held in weights sections)."""
    from ..model.litert_model import _check_runnable

    embedder, extra = None, 0
    if kind == "litertlm":
        from ..model.litert_model import llm_section
        from ..model.litertlm_file import TFLITE_WEIGHTS, read_litertlm

        f = read_litertlm(p)
        sections = f.model_sections()
        s = llm_section(p, f, (EMBEDDER,), "fit estimates a text model's prefill/decode graph and its embedder only")
        graph, where = f.models[s.index], f"{p}: {s.describe()}"
        if EMBEDDER in sections:
            embedder = f.models[sections[EMBEDDER].index]
        weights = {w.model_type: w for w in f.sections_of(TFLITE_WEIGHTS)}
        for g, role in ((graph, s.model_type), (embedder, EMBEDDER)):
            if g is not None and g.external_parameters:
                if role not in weights:
                    raise ModelFileError(f"{p}: {g.where} keeps {g.external_parameters} parameters in external "
                                         f"buffers and the file has no TFLiteWeights section of model_type {role}")
                extra += weights[role].size
    elif kind == "task":
        from ..model.litertlm_file import describe_task_model

        t = describe_task_model(p)
        graph, where = t.tflite, f"{p}: entry {t.entry}"
    else:
        from ..model.tflite_file import read_tflite

        graph, where = read_tflite(p), str(p)
    if graph.whole_generation:
        raise ModelFileError(f"{where}: a whole-generation graph (signature {', '.join(graph.whole_generation)}: "
                             "text in, text out): fit estimates prefill/decode graphs over a KV cache")
    _check_runnable(graph, where)
    if kind != "litertlm" and graph.external_parameters:
        raise ModelFileError(f"{where}: {graph.external_parameters} parameters lie in external buffers (groups "
                             f"{', '.join(graph.external_groups) or 'unnamed'}) outside the file: fit cannot count "
                             "their bytes")
    return graph, embedder, extra


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _windows(graph, p: Path) -> tuple[tuple[int, ...], int]:
    """(layers whose cache holds fewer positions than the graph's, those positions): from the decode (else a
    prefill) signature's kv_cache_k_i inputs, each read at the layout's cache_length axis."""
    kv = graph.kv_cache
    sig = next((s for s in graph.signatures if s.kind == "decode"), None) or \
        next(s for s in graph.signatures if s.kind == "prefill")
    axis = kv.k_axes.index("cache_length")
    windowed = {}
    for t in sig.inputs:
        if not t.name.startswith("kv_cache_k_"):
            continue
        suffix = t.name[len("kv_cache_k_"):]
        if not suffix.isdigit() or len(t.shape) != len(kv.k_shape):
            raise ModelFileError(f"{p}: KV cache input {t.name} {list(t.shape)}: fit reads kv_cache_k_<layer> inputs "
                                 f"of {len(kv.k_shape)} axes")
        others = [d for i, d in enumerate(t.shape) if i != axis]
        if others != [d for i, d in enumerate(kv.k_shape) if i != axis]:
            raise ModelFileError(f"{p}: KV cache input {t.name} {list(t.shape)} has other heads or head size than "
                                 f"kv_cache_k_0's {list(kv.k_shape)}: fit models one KV width for every layer")
        if t.shape[axis] < kv.cache_length:
            windowed[int(suffix)] = t.shape[axis]
    if len(set(windowed.values())) > 1:
        raise ModelFileError(f"{p}: layers' caches hold {sorted(set(windowed.values()))} positions (beside the "
                             f"graph's {kv.cache_length}): fit models one sliding window")
    return tuple(sorted(windowed)), next(iter(windowed.values()), 0)


def _attention_and_mlp(matrices, n_layers: int, hidden: int, kv_dim: int) -> tuple[int | None, int | None]:
    """(q width, MLP width) that one layer's [out, in] matrices are read as, or None for either when no reading
    or several differing ones make them one attention beside one MLP."""
    per_layer = Counter(matrices)
    if any(len(s) != 2 for s in per_layer) or any(n % n_layers for n in per_layer.values()):
        return None, None
    layer = Counter({s: n // n_layers for s, n in per_layer.items()})
    dims = {d for s in layer for d in s}
    dims |= {d - 2 * kv_dim for d in dims if d > 2 * kv_dim} | {d // 2 for d in dims if d % 2 == 0}
    h = hidden
    readings = set()
    for q in dims:
        attentions = (Counter([(q, h), (kv_dim, h), (kv_dim, h), (h, q)]),  # q, k, v, o
                      Counter([(q, h), (2 * kv_dim, h), (h, q)]),  # q, fused kv, o
                      Counter([(q + 2 * kv_dim, h), (h, q)]))  # fused qkv, o
        for i in dims:
            mlps = (Counter([(i, h), (i, h), (h, i)]),  # gate, up, down
                    Counter([(2 * i, h), (h, i)]),  # fused gate-up, down
                    Counter([(i, h), (h, i)]))  # up, down
            readings |= {(q, i) for a in attentions for m in mlps if a + m == layer}
    qs, mlp_widths = {q for q, _ in readings}, {i for _, i in readings}
    return (qs.pop() if len(qs) == 1 else None), (mlp_widths.pop() if len(mlp_widths) == 1 else None)


def _weights(graph, embedder, p: Path) -> str:
    """The estimate's weight type: the storage most of the graph's (and embedder's) parameters have."""
    storage = Counter(graph.weights) + Counter(embedder.weights if embedder is not None else {})
    top = storage.most_common(1)[0][0] if storage else None
    name = _STORAGE.get(top.split()[0]) if top else None
    if name is None:
        raise ModelFileError(f"{p}: most weights are stored as {top or 'nothing'}, which the estimate does not "
                             f"model (it models {', '.join(sorted(set(_STORAGE)))})")
    return name
