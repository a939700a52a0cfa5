"""pocketlm.genai.bundler: packs a model file and its tokenizer into a
.task zip, with the names and meanings of MediaPipe's genai.bundler.

    create_bundle(BundleConfig(tflite_model="model.gguf", tokenizer_model="tokenizer.model",
                               start_token="<bos>", stop_tokens=["<eos>"], output_filename="model.task",
                               system_prompt="You are a helpful assistant."))

As MediaPipe's: the entries TF_LITE_PREFILL_DECODE (the model file),
TOKENIZER_MODEL and METADATA, stored uncompressed; METADATA is the
LlmParameters protobuf (start_token, stop_tokens, the bytes-to-unicode
normalization, prompt_template with system_prompt as its session_prefix);
".task" is appended to an output_filename without it. MediaPipe's bundler
reads a pocketlm bundle's METADATA, and pocketlm runs a bundle MediaPipe's
bundler made around a pocketlm model file.

The chat template travels inside the model file, as the converter writes it
(the GGUF's tokenizer.chat_template): a bundle without prompt_prefix,
prompt_suffix and system_prompt has no prompt_template in METADATA, and the
Python and C APIs both wrap prompts in the chat template's turns. Given
ones win, as MediaPipe's runtime takes METADATA's prompt_template.

pocketlm's own: the tokenizer may also be a tokenizer.json (byte-level BPE)
or a folder holding one, where MediaPipe takes SentencePiece only; start
and stop tokens are checked to be single tokens of the tokenizer;
output_filename defaults to model.task; the bundle is written atomically.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from .._atomic import atomic_output
from .llm_params import build_metadata

MODEL_ENTRY = "TF_LITE_PREFILL_DECODE"
TOKENIZER_ENTRY = "TOKENIZER_MODEL"
METADATA_ENTRY = "METADATA"


@dataclass(frozen=True)
class BundleConfig:
    """MediaPipe's fields, in MediaPipe's order (so positional calls agree)."""

    tflite_model: str  # the model file (pocketlm's GGUF)
    tokenizer_model: str  # SentencePiece tokenizer.model, or tokenizer.json (or a folder holding it)
    start_token: str  # the token every sequence starts with
    stop_tokens: list[str]  # tokens that end a response
    output_filename: str = "model.task"  # ".task" is appended when missing, as MediaPipe does
    enable_bytes_to_unicode_mapping: bool = False  # GPT-2's bytes-to-unicode mapping around the tokenizer
    system_prompt: str | None = None  # text fed once at the start of each session
    prompt_prefix: str | None = None  # put before each user prompt
    prompt_suffix: str | None = None  # put after each user prompt, before the response


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
    if not isinstance(config.stop_tokens, list) or not all(isinstance(t, str) for t in config.stop_tokens):
        raise ValueError(f"stop_tokens must be a list of strings, got {config.stop_tokens!r}")
    if not config.stop_tokens:
        raise ValueError("stop_tokens must be non-empty: name at least one token")
    for name in ("start_token", "system_prompt", "prompt_prefix", "prompt_suffix"):
        value = getattr(config, name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
    encode = _token_ids(tok_path)
    for role, tok in [("start_token", config.start_token)] + [("stop_tokens", t) for t in config.stop_tokens]:
        ids = encode(tok)
        if len(ids) != 1:
            raise ValueError(f"{role} {tok!r} is not a single token of the tokenizer (it encodes to {ids})")
    tok_file = tok_path / "tokenizer.json" if tok_path.is_dir() else tok_path
    meta = build_metadata(config.start_token, list(config.stop_tokens), config.system_prompt, config.prompt_prefix,
                          config.prompt_suffix, config.enable_bytes_to_unicode_mapping)
    name = str(config.output_filename)
    out = Path(name if name.endswith(".task") else name + ".task")
    with atomic_output(out) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.write(model, MODEL_ENTRY)
            zf.write(tok_file, TOKENIZER_ENTRY)
            zf.writestr(METADATA_ENTRY, meta)
    return out
