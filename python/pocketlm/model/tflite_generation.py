"""A whole-generation TFLite graph: one signature that takes the prompt as a
string and answers the text, tokenizing, generating and detokenizing
inside, as TensorFlow Lite's GPT-2 Android example exports a Keras model
(keras-hub's generate() traced into a `serving_default` signature,
converted with select TF ops and TF Text ops). Reading it needs no runtime:
the signature's string tensors, the generation loop's length (the token ids
and KV cache its while loop carries) and the sampler baked into the graph,
from the TFLite schema, after tflite_file.read_tflite has checked the graph.
TensorFlow's own interpreter runs it (engine/litert_tf.py).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

from ..errors import ModelFileError, reading
from .flatbuffer_bounds import Bounds

# ops that draw random numbers: a graph holding one samples with its own sampler and seed
RANDOM_BUILTINS = ("RANDOM_STANDARD_NORMAL", "RANDOM_UNIFORM", "MULTINOMIAL")
RANDOM_FLEX_WORDS = ("Random", "Multinomial", "Categorical")


@dataclass
class WholeGenerationGraph:
    """A text-in, text-out TFLite graph and what running it through its one signature allows."""

    path: str
    tflite: object  # the graph as tflite_file.read_tflite read it
    signature: str  # the whole-generation signature (serving_default)
    input: str  # its string input (the prompt)
    output: str  # its string output (the prompt and the generated text)
    length: int  # positions the generation loop fills, the prompt's tokens (and start token) included
    sampler: str  # "greedy" (ARG_MAX over the logits, nothing random) or "random" (random ops inside)
    sampler_ops: list[str]  # the ops that say so

    @property
    def flex_ops(self) -> list[str]:
        return self.tflite.flex_ops

    @property
    def tf_text_ops(self) -> list[str]:
        return self.tflite.tf_text_ops


def read_whole_generation(path: str, graph) -> WholeGenerationGraph:
    """The whole-generation signature of a graph read by tflite_file.read_tflite (graph.whole_generation is
    not empty). A graph whose generation length or sampler cannot be found is refused by name: its maxTokens
    and sampling could not be held to what it does."""
    names = graph.whole_generation
    if len(names) != 1:
        raise ModelFileError(f"{path}: {len(names)} whole-generation signatures ({', '.join(names)}); pocketlm "
                             "runs a graph with one")
    sig = next(s for s in graph.signatures if s.name == names[0])
    ins = [t for t in sig.inputs if t.dtype == "bytes"]
    outs = [t for t in sig.outputs if t.dtype == "bytes"]
    if len(sig.inputs) != 1 or len(outs) != 1 or ins[0].shape not in ((), (1,)) or outs[0].shape not in ((), (1,)):
        raise ModelFileError(f"{path}: signature {sig.name} takes {[(t.name, t.shape) for t in sig.inputs]} and "
                             f"gives {[(t.name, t.shape) for t in sig.outputs]}; pocketlm runs one string prompt "
                             "in, one string out")
    length = _generation_length(path, sig.name)
    random = [op for op in RANDOM_BUILTINS if op in graph.ops] + \
        [op for op in graph.flex_ops if any(w in op for w in RANDOM_FLEX_WORDS)]
    if random:
        sampler, ops = "random", random
    elif "ARG_MAX" in graph.ops:
        sampler, ops = "greedy", ["ARG_MAX"]
    else:
        raise ModelFileError(f"{path}: signature {sig.name} neither takes an ARG_MAX nor draws random numbers: "
                             "pocketlm cannot tell how it samples")
    return WholeGenerationGraph(path, graph, sig.name, ins[0].name, outs[0].name, length, sampler, ops)


def _generation_length(path: str, signature: str) -> int:
    """The length of the generation loop: keras-hub's generate_step runs a while loop over the token ids
    [batch, L] and the KV cache [batch, layers, 2, L, heads, head_dim]; L counts the prompt's tokens too."""
    from .tflite_file import require_tflite

    tflite = require_tflite()
    where = str(path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        with reading(where, "TFLite flatbuffer (the generation loop)"):
            found = _loop_lengths(tflite, memoryview(buf), where)
    if len(found) != 1:
        raise ModelFileError(f"{where}: signature {signature}: no generation loop over token ids [1, L] and a KV "
                             f"cache [1, layers, 2, L, heads, head_dim] found (lengths: {sorted(found) or 'none'}); "
                             "pocketlm cannot tell how many tokens the graph generates")
    return found.pop()


def _loop_lengths(tflite, buf, where: str) -> set[int]:
    """The L of every subgraph whose inputs hold int32 token ids [1, L] and a float KV cache [1, n, 2, L, h, d]."""
    b = Bounds(buf, where)
    m = tflite.Model()
    m.Init(buf, b.root("the model table"))
    b.table(m, "the model table")
    found = set()
    for g in range(b.vector(m, 8, 4, "Model.subgraphs")):
        sg = b.table(m.Subgraphs(g), f"subgraph {g}")
        n_tensors = b.vector(sg, 4, 4, f"subgraph {g}'s tensors")
        shapes = []
        for j in range(b.vector(sg, 6, 4, f"subgraph {g}'s inputs")):
            what = f"subgraph {g}, input {j}"
            t = b.table(sg.Tensors(b.index(int(sg.Inputs(j)), n_tensors, what, "tensor")), what)
            rank = b.vector(t, 4, 4, f"{what}'s shape")
            shapes.append((t.Type(), tuple(int(x) for x in t.ShapeAsNumpy()) if rank else ()))
        ids = {s[1] for ty, s in shapes if ty == tflite.TensorType.INT32 and len(s) == 2 and s[0] == 1}
        caches = {s[3] for ty, s in shapes if ty == tflite.TensorType.FLOAT32 and len(s) == 6 and s[2] == 2}
        found |= ids & caches
    return found
