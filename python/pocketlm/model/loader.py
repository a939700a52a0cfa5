"""Loads a model by path, recognised by content: a pocketlm/llama.cpp GGUF
file, a .task bundle (a GGUF or a TFLite model inside), a .litertlm, a
.tflite LLM, or a Hugging Face checkpoint folder (converted in memory)."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

from ..errors import ModelFileError, reading
from .forward import Model


def _is_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def load_model(path: str | Path, weight_type: str = "F32", backend=None, tokenizer: str | Path | None = None):
    """(Model, tokenizer, metadata). weight_type applies to checkpoint folders;
    model files keep the types they were written in. The files LiteRT runs
    (.litertlm, a TFLite .task, .tflite) give a litert_model.LiteRTGraph in
    place of the Model; tokenizer names a bare .tflite's tokenizer file. A
    file that cannot be read is a ModelFileError naming it and the part that
    is wrong."""
    from ..tokenizer import load_tokenizer
    from .gguf_file import read_gguf

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no model at {p}")
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelFileError(f"{p} is a folder without config.json: not a Hugging Face checkpoint")
        tok = load_tokenizer(p)
        model = Model.from_pretrained(p, weight_type, backend)
        return model, tok, ({"chat_template": tok.chat_template} if tok.chat_template else {})
    from .litert_model import load_litertlm, load_tflite
    from .tflite_file import is_tflite

    with open(p, "rb") as f:
        head = f.read(8)
    magic = head[:4]
    if head == b"LITERTLM":
        return load_litertlm(p)
    if is_tflite(head):
        return load_tflite(p, tokenizer)
    if magic == b"GGUF":
        cfg, weights, tok, meta = read_gguf(p)
        model = Model.from_typed(cfg, weights, backend)
        model.source = (str(p), 0, 0)  # where the C engine maps the same file
        return model, tok, meta
    if magic[:2] == b"PK" or zipfile.is_zipfile(p):
        with reading(p, ".task bundle"):
            return _load_bundle(p, backend)
    raise ModelFileError(f"{p} is neither a GGUF model file, a .task bundle, a .litertlm, a .tflite nor a "
                         f"checkpoint folder (it starts with {head!r})")


def _load_bundle(p: Path, backend):
    from ..genai.bundler import METADATA_ENTRY, MODEL_ENTRY, TOKENIZER_ENTRY
    from ..genai.llm_params import parse_metadata
    from ..tokenizer import BPETokenizer, SentencePieceTokenizer
    from .gguf_file import read_gguf
    from .tflite_file import is_tflite

    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
        raise ModelFileError(f"{p}: not a readable .task bundle (zip directory: {e})") from None
    with zf:
        names = set(zf.namelist())
        if MODEL_ENTRY not in names:
            raise ModelFileError(f"{p}: a .task bundle needs a {MODEL_ENTRY} entry (it has: "
                                 f"{', '.join(sorted(names)) or 'none'})")
        with reading(p, f"entry {METADATA_ENTRY}"):
            meta = parse_metadata(zf.read(METADATA_ENTRY), f"{p}: entry {METADATA_ENTRY}") \
                if METADATA_ENTRY in names else {}
        with zf.open(MODEL_ENTRY) as src:
            head = src.read(8)
        if is_tflite(head):  # MediaPipe's converter's / litert-torch's graph: LiteRT runs it
            from .litert_model import load_litert_task
            from .litertlm_file import describe_task_model

            return load_litert_task(p, describe_task_model(p), meta, names, zf)
        info = zf.getinfo(MODEL_ENTRY)
        if info.compress_type == zipfile.ZIP_STORED:
            # the model is mapped where it lies inside the bundle
            source = (str(p), _stored_data_offset(p, info), info.file_size)
            cfg, weights, tok, file_meta = read_gguf(*source)
        else:  # a compressed entry has to be inflated: into an unlinked temporary file that the map keeps alive
            with tempfile.NamedTemporaryFile(prefix="pocketlm-", suffix=".gguf") as tmp:
                source = None  # no path to it once the bundle is closed: the C engine borrows the tensors
                with reading(p, f"entry {MODEL_ENTRY}"):
                    with zf.open(info) as src:
                        shutil.copyfileobj(src, tmp, 1 << 20)
                    tmp.flush()
                cfg, weights, tok, file_meta = read_gguf(tmp.name)
                if tok is not None:
                    tok.origin = None  # the temporary file goes with the with-block
        meta = {**file_meta, **meta}
        if TOKENIZER_ENTRY in names:
            with reading(p, f"entry {TOKENIZER_ENTRY}"):
                raw = zf.read(TOKENIZER_ENTRY)
                if raw[:1] == b"{":
                    tok = BPETokenizer(json.loads(raw), cfg.bos_token_id, cfg.eos_token_ids)
                else:
                    tok = SentencePieceTokenizer(raw, cfg.bos_token_id, cfg.eos_token_ids)
                tok.origin = ("bytes", raw)
                tok.chat_template = file_meta.get("chat_template")
        if tok is not None and meta.get("enable_bytes_to_unicode_mapping") and isinstance(tok, SentencePieceTokenizer):
            raise ModelFileError(f"{p}: METADATA asks for the bytes-to-unicode normalization around a SentencePiece "
                                 "tokenizer, which pocketlm does not implement (a tokenizer.json byte-level BPE "
                                 "carries the mapping itself)")
        if "start_token_id" in meta:  # MediaPipe's other form of the start token: an id
            sid = meta.pop("start_token_id")
            if not 0 <= sid < cfg.vocab_size:
                raise ModelFileError(f"{p}: METADATA start_token_id {sid} is outside the vocabulary of {cfg.vocab_size}")
            meta["start_token_id"] = sid
    model = Model.from_typed(cfg, weights, backend)
    model.source = source
    return model, tok, meta


def _stored_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where an uncompressed zip entry's bytes start: after its local header
    (30 bytes, then the name and the extra field, whose lengths the local
    header itself gives; they may differ from the central directory's)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise ModelFileError(f"{path}: corrupted bundle: no local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len
