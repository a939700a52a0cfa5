"""Loads a model by path: a pocketlm/llama.cpp GGUF file, a .task bundle,
or a Hugging Face checkpoint folder (converted in memory)."""

from __future__ import annotations

import json
import shutil
import struct
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
    from ..genai.bundler import METADATA_ENTRY, MODEL_ENTRY, TOKENIZER_ENTRY
    from ..tokenizer import BPETokenizer, SentencePieceTokenizer
    from .gguf_file import read_gguf

    with zipfile.ZipFile(p) as zf:
        names = set(zf.namelist())
        if MODEL_ENTRY not in names:
            raise ValueError(f"{p}: a .task bundle needs a {MODEL_ENTRY} entry")
        meta = json.loads(zf.read(METADATA_ENTRY)) if METADATA_ENTRY in names else {}
        info = zf.getinfo(MODEL_ENTRY)
        if info.compress_type == zipfile.ZIP_STORED:
            # the model is mapped where it lies inside the bundle
            cfg, weights, tok, file_meta = read_gguf(p, _stored_data_offset(p, info), info.file_size)
        else:  # a compressed entry has to be inflated: into an unlinked temporary file that the map keeps alive
            with tempfile.NamedTemporaryFile(prefix="pocketlm-", suffix=".gguf") as tmp:
                with zf.open(info) as src:
                    shutil.copyfileobj(src, tmp, 1 << 20)
                tmp.flush()
                cfg, weights, tok, file_meta = read_gguf(tmp.name)
        meta = {**file_meta, **meta}
        if TOKENIZER_ENTRY in names:
            raw = zf.read(TOKENIZER_ENTRY)
            if raw[:1] == b"{":
                tok = BPETokenizer(json.loads(raw), cfg.bos_token_id, cfg.eos_token_ids)
            else:
                tok = SentencePieceTokenizer(raw, cfg.bos_token_id, cfg.eos_token_ids)
            tok.chat_template = file_meta.get("chat_template")
    return Model.from_typed(cfg, weights, backend), tok, meta


def _stored_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where an uncompressed zip entry's bytes start: after its local header
    (30 bytes, then the name and the extra field, whose lengths the local
    header itself gives; they may differ from the central directory's)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise ValueError(f"{path}: corrupted bundle: no local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len
