"""What `pocketlm info` says about the files LiteRT runs (a .litertlm, a .task
whose model is a TFLite graph, a .tflite): sections, LlmMetadata, the
graph's signatures, KV cache, weights and ops, read with the formats' own
schemas (litertlm_file, tflite_file). It loads nothing into a runtime and
needs none installed; a Jinja template is checked with minijinja, the
template engine LiteRT-LM renders with, when that package is there.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import ModelFileError
from .tflite_file import TFLiteModel, is_tflite

TEMPLATE_LINES = 3  # lines of a Jinja template shown
LINE_WIDTH = 100  # characters of a value line before it is cut with "..."


def litert_kind(path: str | Path) -> str | None:
    """"litertlm", "tflite" or "task" (a .task whose TF_LITE_PREFILL_DECODE is a TFLite graph), by content; None
    for anything else (GGUF, a GGUF .task, a folder)."""
    p = Path(path)
    if not p.is_file():
        return None
    with open(p, "rb") as f:
        head = f.read(8)
    if head == b"LITERTLM":
        return "litertlm"
    if is_tflite(head):
        return "tflite"
    if zipfile.is_zipfile(p):
        from .litertlm_file import describe_task_model

        try:
            return "task" if describe_task_model(p, read_graph=False).kind == "tflite" else None
        except ModelFileError:
            return None
    return None


def describe_litert(path: str | Path) -> list[tuple[str, str]]:
    """(label, text) lines of `pocketlm info` for a LiteRT file; text may hold several lines."""
    p = Path(path)
    kind = litert_kind(p)
    if kind == "litertlm":
        return _litertlm(p)
    if kind == "task":
        return _task(p)
    if kind == "tflite":
        from .tflite_file import read_tflite

        g = read_tflite(p)
        tokenizer = ("inside the graph (it takes and gives text)" if g.whole_generation else
                     "none inside: a .tflite carries no tokenizer (give one with --tokenizer, or keep it beside "
                     "the model)")
        return [("file", f"{p} ({_mb(p.stat().st_size)}, a TFLite model)")] + _graph(g, None) + [
            ("tokenizer", tokenizer), _runtime(g)]
    raise ModelFileError(f"{p} is not a file LiteRT runs (.litertlm, a TFLite .task or a .tflite)")


def _litertlm(p: Path) -> list[tuple[str, str]]:
    from .litertlm_file import TFLITE_MODEL, read_litertlm

    f = read_litertlm(p)
    lines = [("file", f"{p} ({_mb(f.file_size)}, LiteRT-LM format {'.'.join(map(str, f.version))})")]
    rows = []
    for s in f.sections:
        extra = f", model_type {s.model_type}" if s.model_type else ""
        if f.tokenizer is not None and s.index == f.tokenizer.section:
            extra += f", {_tokenizer_kind(f.tokenizer.kind)}"
        rows.append(f"{s.index} {s.type_name:22} at {s.offset}, {_size(s.size)}{extra}")
    lines.append(("sections", "\n".join(rows) or "none"))
    if f.system_metadata:
        lines.append(("system metadata", _cut(", ".join(f"{k} {v}" for k, v in f.system_metadata.items()))))
    if f.tokenizer is None:
        lines.append(("tokenizer", "none (no SP_Tokenizer or HF_Tokenizer_Zlib section)"))
    else:
        t = f.tokenizer
        how = f", inflated from {_size(t.compressed_size)} of zlib" if t.compressed_size else ""
        lines.append(("tokenizer", f"{_tokenizer_kind(t.kind)}, {_size(len(t.data))}{how} (section {t.section})"))
    lines += _llm_metadata(f.llm_metadata) if f.llm_metadata_message is not None else \
        [("LlmMetadata", "none (no LlmMetadataProto section)")]
    if f.executor_metadata:
        lines.append(("executor", _executor(f.executor_metadata)))
    for s in f.sections_of(TFLITE_MODEL):
        lines += _graph(f.models[s.index], f"{s.describe()}, {s.model_type or 'no model_type'}")
    lines.append(_runtime(*f.models.values()))
    return lines


def _task(p: Path) -> list[tuple[str, str]]:
    from ..genai.llm_params import parse_metadata
    from .litertlm_file import describe_task_model

    t = describe_task_model(p)
    lines = [("file", f"{p} ({_mb(p.stat().st_size)}, a .task bundle holding a TFLite model)")]
    with zipfile.ZipFile(p) as zf:
        infos = zf.infolist()
        rows = [f"{i.filename:24} {_size(i.file_size)}, {'stored' if i.compress_type == 0 else 'compressed'}"
                + (f" at {t.offset}" if i.filename == t.entry and not t.compressed else "") for i in infos]
        lines.append(("entries", "\n".join(rows)))
        names = {i.filename for i in infos}
        if "TOKENIZER_MODEL" in names:
            with zf.open("TOKENIZER_MODEL") as src:
                first = src.read(1)
            size = zf.getinfo("TOKENIZER_MODEL").file_size
            lines.append(("tokenizer", f"{_tokenizer_kind('tokenizer.json' if first == b'{' else 'sentencepiece')}, "
                                       f"{_size(size)} (entry TOKENIZER_MODEL)"))
        else:
            lines.append(("tokenizer", "none (no TOKENIZER_MODEL entry)"))
        meta = parse_metadata(zf.read("METADATA"), f"{p}: entry METADATA") if "METADATA" in names else None
    if meta is None:
        lines.append(("METADATA", "none"))
    else:
        if "start_token" in meta:
            lines.append(("start token", repr(meta["start_token"])))
        elif "start_token_id" in meta:
            lines.append(("start token", f"id {meta['start_token_id']}"))
        lines.append(("stop tokens", _cut(", ".join(map(repr, meta.get("stop_tokens", []))) or "none")))
        prompt = [f"{k} {meta[k]!r}" for k in ("system_prompt", "prompt_prefix", "prompt_suffix") if k in meta]
        lines.append(("prompt template", _cut(", ".join(prompt)) if prompt else "none"))
        if meta.get("enable_bytes_to_unicode_mapping"):
            lines.append(("normalization", "bytes-to-unicode around the tokenizer (MediaPipe's runtime applies it; "
                                           "LiteRT-LM ignores it)"))
    return lines + _graph(t.tflite, f"entry {t.entry}") + [_runtime(t.tflite)]


def _llm_metadata(m: dict) -> list[tuple[str, str]]:
    lines = []
    if "start_token" in m:
        lines.append(("start token", repr(m["start_token"])))
    elif "start_token_ids" in m:
        lines.append(("start token", f"ids {m['start_token_ids']}"))
    else:
        lines.append(("start token", "none"))
    stops = [f"ids {ids}" for ids in m.get("stop_token_ids", [])] + [repr(t) for t in m.get("stop_tokens", [])]
    lines.append(("stop tokens", _cut(f"{len(stops)}: " + ", ".join(stops)) if stops else "none"))
    roles = [f"{r} {m[f'{r}_prefix']!r} ... {m[f'{r}_suffix']!r}" for r in ("user", "model", "system")
             if f"{r}_prefix" in m]
    lines.append(("prompt templates", _cut("; ".join(roles)) if roles else "none (the Jinja template wraps turns)"))
    template = m.get("chat_template")
    if template is None:
        lines.append(("chat template", "none"))
    else:
        shown = [_cut(line, LINE_WIDTH) for line in template.splitlines()[:TEMPLATE_LINES]]
        n = template.count("\n") + 1
        more = f" (first {TEMPLATE_LINES} shown)" if n > TEMPLATE_LINES else ""
        lines.append(("chat template", f"Jinja, {n} line{'s' if n > 1 else ''}, {len(template)} characters{more}:\n"
                      + "\n".join(shown)))
        lines.append(("template check", check_template(template)))
    sp = m.get("sampler_params")
    if sp:
        seed = f", seed {sp['seed']}" if "seed" in sp else ""
        lines.append(("sampler", f"{sp['type']}, top_k {sp['top_k']}, top_p {sp['top_p']:g}, temperature "
                                 f"{sp['temperature']:g}{seed} (backend {sp['backend']})"))
    else:
        lines.append(("sampler", "not set (the session's options decide)"))
    lines.append(("max tokens", f"{m['max_num_tokens']} (max_num_tokens)" if "max_num_tokens" in m else "not set"))
    if "llm_model_type" in m:
        lines.append(("model type", str(m["llm_model_type"])))
    extra = [f"{k} {m[k]}" for k in ("supports_thinking", "supports_function_calling", "min_runtime_version",
                                     "kv_cache_init_value") if k in m]
    if "channels" in m:
        extra.append(f"channels {', '.join(c['name'] for c in m['channels'])}")
    if extra:
        lines.append(("also", _cut(", ".join(extra))))
    return lines


def check_template(template: str) -> str:
    """Whether LiteRT-LM's template engine (MiniJinja) renders the template as LiteRT-LM's Conversation calls
    it: messages whose content is a list of {"type": "text", "text": ...} parts, add_generation_prompt true,
    bos_token empty. Needs the minijinja package; says so when it is missing."""
    try:
        import minijinja
    except ImportError:
        return "skipped: minijinja is not installed (pip install minijinja), the template engine LiteRT-LM uses"
    from importlib.metadata import PackageNotFoundError, version

    try:
        which = f"minijinja {version('minijinja')}"
    except PackageNotFoundError:
        which = "minijinja"
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    try:
        out = minijinja.Environment().render_str(template, messages=messages, add_generation_prompt=True,
                                                 bos_token="")
    except Exception as e:  # minijinja.TemplateError: its detail, without the debug dump
        detail = getattr(e, "detail", None) or str(e).splitlines()[0]
        line = getattr(e, "line", None)
        return (f"FAILS in {which} as LiteRT-LM renders it (content as text parts, add_generation_prompt): "
                f"{detail}" + (f" (template line {line})" if line else ""))
    return f"renders in {which} as LiteRT-LM renders it: {_cut(repr(out), 70)}"


def _executor(e: dict) -> str:
    m = e.get("llmExecutorMetadata", {})
    parts = []
    if "maxHistorySize" in m:
        parts.append(f"max history {m['maxHistorySize']} tokens")
    buffers = m.get("stateBuffers", [])
    if buffers:
        axes = sorted({f"{b.get('type', '?').replace('TYPE_', '').lower()} axis {b.get('sequenceAxis', '?')}"
                       for b in buffers})
        parts.append(f"{len(buffers)} state buffers, sequence on {', '.join(axes)}")
    return "; ".join(parts) or "set, nothing pocketlm reads"


def _graph(g: TFLiteModel, where: str | None) -> list[tuple[str, str]]:
    lines = [("graph", f"{where + ': ' if where else ''}TFLite schema {g.schema_version}, {g.n_subgraphs} subgraphs, "
                       f"{_mb(g.size)}" + (f", min runtime {g.metadata['min_runtime_version']}"
                                           if "min_runtime_version" in g.metadata else ""))]
    lines.append(("signatures", "\n".join(_signature(s) for s in g.signatures) or "none"))
    if g.whole_generation:
        lines.append(("whole generation", f"{', '.join(g.whole_generation)}: text in, text out; the graph "
                                          "tokenizes, generates and detokenizes inside (no prefill/decode)"))
    lines.append(("prefill lengths", ", ".join(map(str, g.prefill_lengths)) + " tokens per run"
                  if g.prefill_lengths else "none"))
    lines.append(("decode", f"yes, vocabulary {g.vocab_size} (decode's logits)" if g.decode and g.vocab_size else
                  "yes" if g.decode else "no"))
    lines.append(("KV cache", g.kv_cache.describe() if g.kv_cache else "none (no kv_cache_k_i / kv_cache_v_i)"))
    n = g.parameter_count
    types = ", ".join(f"{t} {k / n:.1%} ({_count(k)})" for t, k in g.weights.items()) if n else "none"
    held = f"; {_size(g.weight_bytes)} in the file"
    if g.external_parameters:
        held += f", {_count(g.external_parameters)} parameters in external buffers " \
                f"({', '.join(g.external_groups) or 'unnamed'})"
    lines.append(("weights", types + held))
    lines.append(("parameters", f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n:,}"))
    builtin = ", ".join(f"{k} {v}" for k, v in g.ops.items() if k != "CUSTOM")
    ops = [f"{len([k for k in g.ops if k != 'CUSTOM'])} builtin: {builtin}"]
    if g.composites:
        ops.append("composites " + ", ".join(f"{k} x{v}" for k, v in g.composites.items()))
    if g.flex_ops:
        ops.append(f"select TF ops (Flex, need TensorFlow's kernels) {len(g.flex_ops)}: {', '.join(g.flex_ops)}")
        if g.tf_text_ops:
            ops.append(f"of which TF Text ops (need tensorflow_text too): {', '.join(g.tf_text_ops)}")
    if g.custom_ops:
        ops.append(f"custom ops {len(g.custom_ops)}: {', '.join(g.custom_ops)}")
    if not g.flex_ops and not g.custom_ops:
        ops.append("no select TF or custom ops")
    lines.append(("ops", "\n".join(_wrap(o) for o in ops)))
    return lines


def _signature(s) -> str:
    def specs(ts):
        caches = [t for t in ts if t.name.startswith(("kv_cache_k_", "kv_cache_v_"))]
        rest = [f"{t.name} {list(t.shape)} {t.dtype}" for t in ts if t not in caches]
        return ", ".join(rest + ([f"{len(caches)} KV caches"] if caches else [])) or "nothing"

    return f"{s.name} ({s.kind}): {specs(s.inputs)} -> {specs(s.outputs)}"


def _runtime(*graphs: TFLiteModel) -> tuple[str, str]:
    if any(g.flex_ops for g in graphs):
        runs = ("TensorFlow Lite with the Flex delegate runs it (its select TF ops are not in LiteRT's runtime; "
                "TF Text ops need tensorflow_text too)")
    else:
        runs = "LiteRT runs it (pip install pocketlm[litert])"
    return ("runtime", f"nothing was loaded: read with the formats' schemas; {runs}")


def _tokenizer_kind(kind: str) -> str:
    return "SentencePiece model" if kind == "sentencepiece" else "tokenizer.json (Hugging Face)"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _size(n: int) -> str:
    return f"{n} bytes" if n < 10_000 else f"{n / 1024:.1f} KiB" if n < 10 << 20 else f"{n / 2**20:.1f} MiB"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} G" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} K" \
        if n >= 1e4 else str(n)


def _cut(text: str, width: int = 4 * LINE_WIDTH) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _wrap(text: str, width: int = LINE_WIDTH) -> str:
    """Breaks a long comma-separated list into lines of about `width`."""
    out, line = [], ""
    for part in text.split(", "):
        if line and len(line) + 2 + len(part) > width:
            out.append(line + ",")
            line = "  " + part
        else:
            line = f"{line}, {part}" if line else part
    return "\n".join(out + [line])
