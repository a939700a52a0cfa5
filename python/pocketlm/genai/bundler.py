"""pocketlm.genai.bundler: packs a model file and its tokenizer into a
.task zip, with the names and meanings of MediaPipe's genai.bundler.

    create_bundle(BundleConfig(tflite_model="model.gguf", tokenizer_model="tokenizer.model",
                               start_token="<bos>", stop_tokens=["<eos>"], output_filename="model.task"))

Start and stop tokens must be single tokens of the tokenizer. The bundle is
written atomically (temporary file, then rename); entries are stored
uncompressed, as MediaPipe's are.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .._atomic import atomic_output

MODEL_ENTRY = "TF_LITE_PREFILL_DECODE"
TOKENIZER_ENTRY = "TOKENIZER_MODEL"
METADATA_ENTRY = "METADATA"


@dataclass
class BundleConfig:
    tflite_model: str  # the model file (pocketlm's GGUF)
    tokenizer_model: str  # SentencePiece tokenizer.model, or tokenizer.json (or a folder holding it)
    start_token: str
    stop_tokens: list[str] = field(default_factory=list)
    output_filename: str = "model.task"
    enable_bytes_to_unicode_mapping: bool = False
    prompt_prefix: str | None = None
    prompt_suffix: str | None = None


def _token_ids(tokenizer_path: Path):
    """A function text -> list of ids that treats special tokens as single tokens."""
    from ..tokenizer import SentencePieceTokenizer, load_tokenizer

    if tokenizer_path.is_dir() or tokenizer_path.name == "tokenizer.json":
        tok = load_tokenizer(tokenizer_path if tokenizer_path.is_dir() else tokenizer_path.parent)
        return lambda text: tok.encode(text)
    sp = SentencePieceTokenizer(tokenizer_path).sp

    def encode(text: str) -> list[int]:
        piece = sp.piece_to_id(text)  # control pieces such as <s> are found by name
        if piece != sp.unk_id() or text == sp.id_to_piece(sp.unk_id()):
            return [piece]
        return list(sp.encode(text))

    return encode


def create_bundle(config: BundleConfig) -> Path:
    model = Path(config.tflite_model)
    tok_path = Path(config.tokenizer_model)
    if not model.is_file():
        raise FileNotFoundError(f"tflite_model {model} does not exist")
    if not tok_path.exists():
        raise FileNotFoundError(f"tokenizer_model {tok_path} does not exist")
    if not config.stop_tokens:
        raise ValueError("stop_tokens must name at least one token")
    encode = _token_ids(tok_path)
    for role, tok in [("start_token", config.start_token)] + [("stop_tokens", t) for t in config.stop_tokens]:
        ids = encode(tok)
        if len(ids) != 1:
            raise ValueError(f"{role} {tok!r} is not a single token of the tokenizer (it encodes to {ids})")
    tok_file = tok_path / "tokenizer.json" if tok_path.is_dir() else tok_path
    meta = {"start_token": config.start_token, "stop_tokens": list(config.stop_tokens),
            "enable_bytes_to_unicode_mapping": config.enable_bytes_to_unicode_mapping,
            "prompt_prefix": config.prompt_prefix, "prompt_suffix": config.prompt_suffix}
    out = Path(config.output_filename)
    with atomic_output(out) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.write(model, MODEL_ENTRY)
            zf.write(tok_file, TOKENIZER_ENTRY)
            zf.writestr(METADATA_ENTRY, json.dumps(meta, indent=2))
    return out
