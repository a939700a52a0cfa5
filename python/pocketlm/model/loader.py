"""Loads a model by path: a pocketlm/llama.cpp GGUF file, a .task bundle,
or a Hugging Face checkpoint folder (converted in memory)."""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from .forward import Model


def _is_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def load_model(path: str | Path, weight_type: str = "F32", backend=None):
    """(Model, tokenizer, metadata). weight_type applies to checkpoint folders;
    model files keep the types they were written in."""
    from ..tokenizer import load_tokenizer
    from .gguf_file import read_gguf

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no model at {p}")
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ValueError(f"{p} is a folder without config.json: not a Hugging Face checkpoint")
        tok = load_tokenizer(p)
        return Model.from_pretrained(p, weight_type, backend), tok, ({"chat_template": tok.chat_template}
                                                                     if tok.chat_template else {})
    if zipfile.is_zipfile(p):
        return _load_bundle(p, backend)
    if _is_gguf(p):
        cfg, weights, tok, meta = read_gguf(p)
        return Model.from_typed(cfg, weights, backend), tok, meta
    raise ValueError(f"{p} is neither a GGUF model file, a .task bundle nor a checkpoint folder")


def _load_bundle(p: Path, backend):
    from ..tokenizer import SentencePieceTokenizer, load_tokenizer
    from .gguf_file import read_gguf
    from ..genai.bundler import MODEL_ENTRY, TOKENIZER_ENTRY, METADATA_ENTRY

    with zipfile.ZipFile(p) as zf:
        names = set(zf.namelist())
        if MODEL_ENTRY not in names:
            raise ValueError(f"{p}: a .task bundle needs a {MODEL_ENTRY} entry")
        meta = json.loads(zf.read(METADATA_ENTRY)) if METADATA_ENTRY in names else {}
        # the model is read memory-mapped from a file of its own
        tmp = Path(tempfile.mkdtemp(prefix="pocketlm-task-"))
        model_file = Path(zf.extract(MODEL_ENTRY, tmp))
        cfg, weights, tok, file_meta = read_gguf(model_file)
        meta = {**file_meta, **meta}
        if TOKENIZER_ENTRY in names:
            raw = zf.read(TOKENIZER_ENTRY)
            if raw[:1] == b"{":
                (tmp / "tokenizer.json").write_bytes(raw)
                tok = load_tokenizer(tmp)
                tok.bos_id = tok.bos_id if tok.bos_id is not None else cfg.bos_token_id
            else:
                tok = SentencePieceTokenizer(raw, cfg.bos_token_id, cfg.eos_token_ids)
            tok.chat_template = file_meta.get("chat_template")
    return Model.from_typed(cfg, weights, backend), tok, meta
