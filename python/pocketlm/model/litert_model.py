"""The files phones run, as LiteRT runs them: a `.litertlm`, a `.task` whose
TF_LITE_PREFILL_DECODE entry is a TFLite model, or a bare `.tflite` LLM with
its tokenizer beside it. Loading reads them with their own schemas
(litertlm_file, tflite_file) and gives what an engine needs: where the
TFLite graph lies, its signatures and KV cache, the tokenizer and the
metadata. It runs nothing; the LiteRT engine (libpocketlm's executor over
LiteRT's own kernels) does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileError, reading

LITERT_EXTRA = "pip install 'pocketlm[litert]'"
# a bare .tflite's tokenizer, when none is named: the one file of these names beside it
TOKENIZER_NAMES = ("*.tokenizer.model", "tokenizer.model", "tokenizer.json", "*.tokenizer.json")


class LiteRTBundleWarning(UserWarning):
    """A file that runs correctly here but that LiteRT-LM on the phone reads differently."""


@dataclass
class LiteRTConfig:
    """What the engine and the device need of a TFLite LLM graph, read from its KV cache and logits."""

    n_layers: int  # kv_cache_k_i / kv_cache_v_i pairs
    n_kv_heads: int
    head_dim: int
    vocab_size: int  # decode's logits
    max_position_embeddings: int  # the KV cache's length, fixed in the graph
    kv_type: str = "F32"  # the graph's caches


@dataclass
class LiteRTGraph:
    """A TFLite LLM graph where it lies in a file, and what its signatures say."""

    path: str  # the file
    offset: int  # where the graph's bytes start in it
    size: int  # its bytes
    container: str  # "litertlm", "task" or "tflite"
    tflite: object  # the graph as tflite_file.read_tflite read it (signatures, KV cache, weights)

    @property
    def cfg(self) -> LiteRTConfig:
        kv = self.tflite.kv_cache
        return LiteRTConfig(kv.n_layers, kv.n_kv_heads, kv.head_dim, self.tflite.vocab_size, kv.cache_length)

    @property
    def cache_length(self) -> int:
        return self.tflite.kv_cache.cache_length

    @property
    def vocab_size(self) -> int:
        return self.tflite.vocab_size

    @property
    def prefill_lengths(self) -> list[int]:
        return list(self.tflite.prefill_lengths)


def head_of(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(8)


def is_litert_file(path: str | Path) -> bool:
    """A .litertlm or a .tflite, by content (not by name)."""
    from .tflite_file import is_tflite

    head = head_of(Path(path))
    return head == b"LITERTLM" or is_tflite(head)


def _check_runnable(graph, where: str) -> None:
    """An LLM graph LiteRT's executor can drive: prefill_N and decode signatures over a KV cache."""
    if graph.whole_generation:
        ops = f" and its select TF ops ({', '.join(graph.flex_ops[:6])}{', ...' if len(graph.flex_ops) > 6 else ''})" \
            if graph.flex_ops else ""
        raise ModelFileError(f"{where}: a whole-generation graph (signature {', '.join(graph.whole_generation)}: text "
                             "in, text out, as TensorFlow Lite's GPT-2 Android example exports it), not prefill/decode "
                             f"signatures. It needs TensorFlow's own TFLite interpreter{ops}, which pocketlm drives "
                             "for a bare .tflite only: extract the graph to a .tflite and run it with tensorflow-cpu "
                             "and tensorflow-text 2.19 (pip install 'pocketlm[litert-tf]'), or export the model with "
                             "litert-torch to a .litertlm (pocketlm convert --to litertlm)")
    if not graph.decode or not graph.prefill_lengths or graph.kv_cache is None or not graph.vocab_size:
        missing = [what for what, ok in (("a decode signature", graph.decode),
                                         ("prefill_N signatures", graph.prefill_lengths),
                                         ("kv_cache_k_i / kv_cache_v_i tensors", graph.kv_cache is not None),
                                         ("logits", graph.vocab_size)) if not ok]
        raise ModelFileError(f"{where}: not an LLM graph LiteRT's executor runs (missing {', '.join(missing)})")


def _tokenizer_from(kind: str, data: bytes, bos_id, eos_ids, where: str, bytes_to_unicode: bool = False):
    import json

    from ..tokenizer import BPETokenizer, ByteMappedSentencePiece, SentencePieceTokenizer

    with reading(where, "tokenizer"):
        if kind == "tokenizer.json":
            tok = BPETokenizer(json.loads(data), bos_id, tuple(eos_ids))
        elif bytes_to_unicode:
            tok = ByteMappedSentencePiece(data, bos_id, tuple(eos_ids))
        else:
            tok = SentencePieceTokenizer(data, bos_id, tuple(eos_ids))
    tok.origin = ("bytes", bytes(data))
    return tok


def llm_section(p: Path, f, allowed=(), what: str = "pocketlm runs text models of one prefill/decode graph only"):
    """The TFLiteModel section of a read .litertlm (litertlm_file.read_litertlm) that holds the LLM's
    prefill/decode graph (model_type tf_lite_prefill_decode, or a lone unspecified one); any other model
    section but those of `allowed` model types is refused by name (`what` says why)."""
    from .litertlm_file import PREFILL_DECODE

    sections = f.model_sections()
    s = sections.get(PREFILL_DECODE) or (sections.get("unspecified") if len(sections) == 1 else None)
    if s is None:
        raise ModelFileError(f"{p}: no TFLiteModel section of model_type {PREFILL_DECODE} (it has: "
                             f"{', '.join(sorted(sections)) or 'none'})")
    others = sorted(r for r in sections if r not in (PREFILL_DECODE, "unspecified", *allowed))
    if others:  # embedders, vision / audio encoders: another model's parts, refused by name
        raise ModelFileError(f"{p}: TFLite sections {', '.join(others)} beside the LLM: {what}")
    return s


def load_litertlm(p: Path):
    """(LiteRTGraph, tokenizer, metadata) of a .litertlm."""
    from .litertlm_file import read_litertlm

    f = read_litertlm(p)
    s = llm_section(p, f)
    graph = f.models[s.index]
    where = f"{p}: {s.describe()}"
    _check_runnable(graph, where)
    if f.tokenizer is None:
        raise ModelFileError(f"{p}: no tokenizer section (SP_Tokenizer or HF_Tokenizer_Zlib)")
    meta = _engine_metadata(f.llm_metadata)
    tok = _tokenizer_from(f.tokenizer.kind, f.tokenizer.data, meta.get("start_token_id"), meta["stop_token_ids"],
                          f"{p}: section {f.tokenizer.section}")
    return LiteRTGraph(str(p), s.offset, s.size, "litertlm", graph), tok, meta


def _engine_metadata(meta: dict) -> dict:
    """LlmMetadata in the names the Engine reads: the start token, stop tokens that are one token, the user
    and model turns as a bundle's prompt prefix / suffix, the Jinja template."""
    out = {k: v for k, v in meta.items() if k in ("start_token", "start_token_id", "chat_template",
                                                  "max_num_tokens", "sampler_params", "llm_model_type")}
    out["stop_tokens"] = list(meta.get("stop_tokens", []))
    out["stop_token_ids"] = [ids[0] for ids in meta.get("stop_token_ids", []) if len(ids) == 1]
    out["stop_sequence_ids"] = [ids for ids in meta.get("stop_token_ids", []) if len(ids) > 1]
    # LiteRT-LM's PromptTemplates: user prefix/suffix around the prompt, then the model's prefix
    if any(meta.get(k) for k in ("user_prefix", "user_suffix", "model_prefix", "system_prefix")):
        out["prompt_prefix"] = meta.get("user_prefix", "")
        out["prompt_suffix"] = meta.get("user_suffix", "") + meta.get("model_prefix", "")
    return out


def load_litert_task(p: Path, task, meta: dict, names: set[str], zf):
    """(LiteRTGraph, tokenizer, metadata) of a .task whose model entry is a TFLite graph (describe_task_model's
    TaskModel), its METADATA already parsed."""
    from ..genai.bundler import TOKENIZER_ENTRY

    where = f"{p}: entry {task.entry}"
    if task.compressed:
        raise ModelFileError(f"{where} is compressed; LiteRT maps the model where it lies, so bundle it stored "
                             "(MediaPipe's bundler and pocketlm's do)")
    _check_runnable(task.tflite, where)
    if TOKENIZER_ENTRY not in names:
        raise ModelFileError(f"{p}: a TFLite .task needs a {TOKENIZER_ENTRY} entry")
    raw = zf.read(TOKENIZER_ENTRY)
    b2u = bool(meta.get("enable_bytes_to_unicode_mapping"))
    tok = _tokenizer_from("tokenizer.json" if raw[:1] == b"{" else "sentencepiece", raw, None, (),
                          f"{p}: entry {TOKENIZER_ENTRY}", bytes_to_unicode=b2u and raw[:1] != b"{")
    if b2u:
        warnings.warn(f"{p}: METADATA asks for MediaPipe's bytes-to-unicode mapping around the tokenizer. pocketlm "
                      "applies it, as MediaPipe's runtime does; LiteRT-LM ignores it and decodes this bundle wrongly "
                      "(spaces become unknown tokens). Ship a .litertlm with the tokenizer.json for LiteRT-LM.",
                      LiteRTBundleWarning, stacklevel=3)
    return LiteRTGraph(str(p), task.offset, task.size, "task", task.tflite), tok, meta


def load_tflite(p: Path, tokenizer: str | Path | None = None):
    """(LiteRTGraph, tokenizer, metadata) of a bare .tflite LLM; its tokenizer is `tokenizer`, else the one
    tokenizer file beside it (TOKENIZER_NAMES)."""
    from .tflite_file import read_tflite

    graph = read_tflite(p)
    if graph.whole_generation:  # text in, text out: TensorFlow's interpreter runs it (engine/litert_tf.py)
        return load_whole_generation(p, graph, tokenizer)
    _check_runnable(graph, str(p))
    if tokenizer is None:
        found = sorted({q for pattern in TOKENIZER_NAMES for q in p.parent.glob(pattern)})
        if len(found) != 1:
            raise ModelFileError(f"{p}: a .tflite carries no tokenizer; name it (--tokenizer) or keep exactly one "
                                 f"of {', '.join(TOKENIZER_NAMES)} beside it (found: "
                                 f"{', '.join(q.name for q in found) or 'none'})")
        tokenizer = found[0]
    t = Path(tokenizer)
    if not t.is_file():
        raise FileNotFoundError(f"no tokenizer at {t}")
    data = t.read_bytes()
    tok = _tokenizer_from("tokenizer.json" if data[:1] == b"{" else "sentencepiece", data, None, (), str(t))
    if data[:1] != b"{":  # no metadata names a start token: a SentencePiece model's BOS starts the sequence,
        tok.add_bos = tok.bos_id is not None  # as for SentencePiece checkpoints (tokenizer.load_tokenizer)
    return LiteRTGraph(str(p), 0, p.stat().st_size, "tflite", graph), tok, {}


def load_whole_generation(p: Path, graph, tokenizer: str | Path | None = None):
    """(WholeGenerationGraph, tokenizer or None, metadata) of a .tflite whose one signature takes text and
    answers text. The graph tokenizes inside; a tokenizer is only for counting tokens (sizeInTokens), and is
    taken only when named: a tokenizer file beside the graph may be another model's."""
    from .tflite_generation import read_whole_generation

    g = read_whole_generation(str(p), graph)
    tok = None
    if tokenizer is not None:
        t = Path(tokenizer)
        if not t.is_file():
            raise FileNotFoundError(f"no tokenizer at {t}")
        data = t.read_bytes()
        tok = _tokenizer_from("tokenizer.json" if data[:1] == b"{" else "sentencepiece", data, None, (), str(t))
    return g, tok, {}
