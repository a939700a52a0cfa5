"""The LiteRT engine: the files phones run (.litertlm, TFLite .task, .tflite)
on LiteRT's own kernels. libpocketlm's executor drives the graph's prefill_N
and decode signatures through LiteRT's TFLite runtime (XNNPack), inside the
C engine's sessions, so sampling, stop tokens, clone and cancel are the
native engine's (engine/native.py's NativeSession runs them). This module
opens the graph, finds LiteRT's library and counts the memory LiteRT uses;
it runs no forward pass of its own.
"""

from __future__ import annotations

from ..errors import ModelFileError
from ..model.litert_model import LITERT_EXTRA, LiteRTGraph
from .native import NativeModel, _check, _lib


def litert_library() -> str:
    """LiteRT-LM's runtime library (liblitert-lm.so, which exports LiteRT's TFLite C API), from the installed
    litert_lm package; refused, saying what to install, without it."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("litert_lm")
    lib = os.environ.get("POCKETLM_LITERT_LIB")
    if lib:
        return lib
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"running a LiteRT file (.litertlm, TFLite .task, .tflite) needs LiteRT's runtime: "
                             f"{LITERT_EXTRA} (litert-lm-api), or POCKETLM_LITERT_LIB naming liblitert-lm.so")
    path = os.path.join(list(spec.submodule_search_locations)[0], "liblitert-lm.so")
    if not os.path.isfile(path):
        raise ModelFileError(f"litert_lm is installed but has no liblitert-lm.so at {path}; reinstall it "
                             f"({LITERT_EXTRA})")
    return path


def _load_library() -> None:
    ffi, lib = _lib()
    if lib.plm_litert_library() != ffi.NULL:
        return
    err = ffi.new("char **")
    _check(lib.plm_litert_set_library(litert_library().encode(), err), err, "LiteRT's library")


def open_graph(graph: LiteRTGraph, max_tokens: int) -> NativeModel:
    """The graph as a C engine model whose sessions run on LiteRT. maxTokens above the graph's KV cache is
    refused, naming both: the cache length is fixed in the file."""
    if max_tokens > graph.cache_length:
        raise ValueError(f"{graph.path}: maxTokens {max_tokens} is more than the {graph.cache_length} positions of "
                         "the KV cache fixed in the file's graph; use maxTokens <= "
                         f"{graph.cache_length} or export the model with a longer cache")
    _load_library()
    ffi, lib = _lib()
    out, err = ffi.new("plm_model **"), ffi.new("char **")
    _check(lib.plm_model_open_litert(graph.path.encode(), graph.offset, graph.size, out, err), err, graph.path,
           ModelFileError)
    return NativeModel(out[0], graph.cfg)


def memory_note(graph: LiteRTGraph, max_tokens: int) -> str | None:
    """What a maxTokens below the graph's cache still pays for (LiteRT's caches are their full length)."""
    if max_tokens >= graph.cache_length:
        return None
    return (f"maxTokens {max_tokens} is below the graph's KV cache of {graph.cache_length} positions: LiteRT still "
            f"holds and attends over all {graph.cache_length} (memory, and attention time at every step)")
