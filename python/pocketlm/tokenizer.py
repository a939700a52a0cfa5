"""Tokenizers: SentencePiece (tokenizer.model, through the sentencepiece
package) and Hugging Face tokenizer.json byte-level BPE (GPT-2, Phi-2,
Falcon, StableLM), the latter implemented here so the runtime needs no
`tokenizers` package. Both give ids that agree with Hugging Face's.

StreamDecoder turns generated ids into text pieces that never end halfway
through a multi-byte UTF-8 character.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path

import regex

# GPT-2's pre-tokenizer pattern (HF ByteLevel with use_regex=true)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map of the 256 bytes onto printable characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


class Tokenizer(ABC):
    """What the runtime needs of a tokenizer."""

    bos_id: int | None = None
    eos_ids: tuple[int, ...] = ()
    add_bos: bool = False  # whether a sequence starts with bos_id (the tokenizer's own setting)
    chat_template: str | None = None  # the checkpoint's Jinja chat template, when it has one
    # where the vocabulary was read, for libpocketlm to read the same: ("gguf", path, offset, length)
    # or ("bytes", a tokenizer.json / SentencePiece model); None when it no longer exists
    origin: tuple | None = None

    @abstractmethod
    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        """Token ids of text, with the BOS id first when add_bos."""

    @abstractmethod
    def decode(self, ids) -> str:
        """Text of token ids."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids."""

    def special_id(self, text: str) -> int | None:
        """The id of text when it is one special (control or added) token, else None."""
        return None


class BPETokenizer(Tokenizer):
    """Byte-level BPE from a tokenizer.json."""

    def __init__(self, spec: dict, bos_id: int | None = None, eos_ids: tuple[int, ...] = ()):
        model = spec.get("model") or {}
        if model.get("type") != "BPE":
            raise ValueError(f"tokenizer.json model type {model.get('type')!r} is not supported (only byte-level BPE)")
        self.vocab: dict[str, int] = dict(model["vocab"])
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        # a word that is itself a token is taken whole, before any merge (Llama-3's tokenizer.json)
        self.ignore_merges = bool(model.get("ignore_merges", False))
        self.added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        self.added_ids = set(self.added.values())
        self.special_ids = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.id_to_token.update({i: t for t, i in self.added.items()})
        self._added_re = (regex.compile("|".join(regex.escape(t) for t in sorted(self.added, key=len, reverse=True)))
                          if self.added else None)
        self.pre_spec = spec.get("pre_tokenizer")
        self.add_prefix_space, self.splits = self._pre_tokenizer(self.pre_spec)
        self.byte_enc = bytes_to_unicode()
        self.byte_dec = {c: b for b, c in self.byte_enc.items()}
        self.bos_id, self.eos_ids = bos_id, tuple(eos_ids)
        self._cache: dict[str, list[int]] = {}

    @staticmethod
    def _pre_tokenizer(pre) -> tuple[bool, list]:
        """(add_prefix_space, list of split regexes) from the pre_tokenizer spec."""
        if pre is None:
            return False, []
        steps = pre["pretokenizers"] if pre.get("type") == "Sequence" else [pre]
        prefix, splits = False, []
        for step in steps:
            if step["type"] == "ByteLevel":
                prefix = prefix or bool(step.get("add_prefix_space", False))
                if step.get("use_regex", True):
                    splits.append(regex.compile(GPT2_PATTERN))
            elif step["type"] == "Split":
                pat = step["pattern"].get("Regex") or regex.escape(step["pattern"].get("String", ""))
                if step.get("behavior", "Isolated") != "Isolated" or step.get("invert", False):
                    raise ValueError(f"unsupported Split pre-tokenizer behaviour {step.get('behavior')!r}")
                splits.append(regex.compile(pat))
            elif step["type"] == "Digits" and step.get("individual_digits"):
                splits.append(regex.compile(r"\p{N}"))
            else:
                raise ValueError(f"unsupported pre-tokenizer {step['type']!r}")
        return prefix, splits

    @property
    def vocab_size(self) -> int:
        return max(self.id_to_token) + 1

    def special_id(self, text: str) -> int | None:
        return self.added.get(text)

    def _split(self, text: str) -> list[str]:
        pieces = [text]
        for pat in self.splits:  # Isolated: each match is a piece, and so is each gap between matches
            out = []
            for p in pieces:
                pos = 0
                for m in pat.finditer(p):
                    if m.start() > pos:
                        out.append(p[pos : m.start()])
                    if m.end() > m.start():
                        out.append(m.group())
                    pos = m.end()
                if pos < len(p):
                    out.append(p[pos:])
            pieces = out
        return pieces

    def _bpe(self, word: str) -> list[int]:
        if word in self._cache:
            return self._cache[word]
        if self.ignore_merges and word in self.vocab:
            return [self.vocab[word]]
        parts = list(word)
        while len(parts) > 1:
            best = min(((self.ranks.get((a, b), 1 << 62), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))))
            if best[0] == 1 << 62:
                break
            i = best[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        ids = []
        for p in parts:
            if p not in self.vocab:
                raise ValueError(f"byte-level BPE produced {p!r}, which is not in the vocabulary")
            ids.append(self.vocab[p])
        self._cache[word] = ids
        return ids

    def _encode_plain(self, text: str, first: bool) -> list[int]:
        if self.add_prefix_space and first and text and not text.startswith(" "):
            text = " " + text
        ids = []
        for piece in self._split(text):
            ids += self._bpe("".join(self.byte_enc[b] for b in piece.encode("utf-8")))
        return ids

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = [self.bos_id] if add_bos and self.bos_id is not None else []
        pos, first = 0, True
        if self._added_re is not None:
            for m in self._added_re.finditer(text):
                if m.start() > pos:
                    ids += self._encode_plain(text[pos : m.start()], first)
                ids.append(self.added[m.group()])
                pos, first = m.end(), False
        if pos < len(text):
            ids += self._encode_plain(text[pos:], first)
        return ids

    def decode(self, ids, skip_special: bool = False) -> str:
        out, buf = [], bytearray()
        for i in ids:
            i = int(i)
            tok = self.id_to_token.get(i)
            if tok is None:
                raise ValueError(f"token id {i} is outside the vocabulary")
            if i in self.added_ids and tok in self.added:
                if skip_special and i in self.special_ids:
                    continue
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                out.append(tok)
            else:
                buf += bytes(self.byte_dec[c] for c in tok)
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


class SentencePieceTokenizer(Tokenizer):
    def __init__(self, model: str | Path | bytes, bos_id: int | None = None, eos_ids: tuple[int, ...] = ()):
        """model: a tokenizer.model path, or its bytes (as carried in a GGUF file or a .task bundle)."""
        import sentencepiece as spm

        if isinstance(model, (bytes, bytearray)):
            self.sp = spm.SentencePieceProcessor(model_proto=bytes(model))
        else:
            self.sp = spm.SentencePieceProcessor(model_file=str(model))
        self.bos_id = bos_id if bos_id is not None else (self.sp.bos_id() if self.sp.bos_id() >= 0 else None)
        self.eos_ids = tuple(eos_ids) or ((self.sp.eos_id(),) if self.sp.eos_id() >= 0 else ())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = list(self.sp.encode(text))
        return ([self.bos_id] if add_bos and self.bos_id is not None else []) + ids

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids])

    def special_id(self, text: str) -> int | None:
        i = self.sp.piece_to_id(text)
        if i == self.sp.unk_id() and text != self.sp.id_to_piece(i):
            return None  # not a piece at all
        # control pieces never come out of encode; user-defined ones encode to themselves
        return i if self.sp.is_control(i) or self.sp.is_unknown(i) or list(self.sp.encode(text)) == [i] else None


class ByteMappedSentencePiece(SentencePieceTokenizer):
    """A SentencePiece model over GPT-2's bytes-to-unicode alphabet, as
    MediaPipe's runtime runs a .task whose METADATA asks for
    INPUT_OUTPUT_NORMALIZATION_BYTES_TO_UNICODE (a byte-level BPE converted to
    SentencePiece): each UTF-8 byte of the input becomes its printable
    character before encoding, and decoded characters become bytes again.
    LiteRT-LM ignores the setting and garbles such bundles."""

    def __init__(self, model, bos_id=None, eos_ids=()):
        super().__init__(model, bos_id, eos_ids)
        self.byte_enc = bytes_to_unicode()
        self.byte_dec = {c: b for b, c in self.byte_enc.items()}

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = list(self.sp.encode("".join(self.byte_enc[b] for b in text.encode("utf-8"))))
        return ([self.bos_id] if add_bos and self.bos_id is not None else []) + ids

    def decode(self, ids) -> str:
        buf = bytearray()
        for c in self.sp.decode([int(i) for i in ids]):
            b = self.byte_dec.get(c)
            if b is None:
                buf += c.encode("utf-8")  # a piece outside the byte alphabet (a control token's text)
            else:
                buf.append(b)
        return buf.decode("utf-8", errors="replace")


class ScoredPieceTokenizer(Tokenizer):
    """SentencePiece-style BPE from a vocabulary of pieces and scores (GGUF's
    "llama" tokenizer model, as llama.cpp's converter writes it): spaces become
    "▁", a leading one is added, and adjacent symbols merge, highest
    score first, while the merge is a piece; characters with no piece fall
    back to <0xXX> byte pieces."""

    def __init__(self, pieces: list[str], scores: list[float], types: list[int], bos_id=None, eos_ids=(),
                 add_space_prefix: bool = True):
        self.pieces, self.scores = list(pieces), [float(x) for x in scores]
        self.index = {p: i for i, p in enumerate(self.pieces)}
        self.byte_ids = {int(p[3:5], 16): i for i, p in enumerate(self.pieces) if types[i] == 6 and len(p) == 6}
        self.control = {i for i, t in enumerate(types) if t in (2, 3)}
        self.user_defined = {i for i, t in enumerate(types) if t == 4}
        self.bos_id, self.eos_ids, self.add_space_prefix = bos_id, tuple(eos_ids), add_space_prefix

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def special_id(self, text: str) -> int | None:
        i = self.index.get(text)
        return i if i is not None and (i in self.control or i in self.user_defined) else None

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = [self.bos_id] if add_bos and self.bos_id is not None else []
        if not text:
            return ids
        text = text.replace(" ", "▁")
        if self.add_space_prefix:
            text = "▁" + text
        sym = list(text)
        while len(sym) > 1:
            best, at = None, -1
            for i in range(len(sym) - 1):
                j = self.index.get(sym[i] + sym[i + 1])
                if j is not None and j not in self.control and (best is None or self.scores[j] > best):
                    best, at = self.scores[j], i
            if at < 0:
                break
            sym[at : at + 2] = [sym[at] + sym[at + 1]]
        for s_ in sym:
            i = self.index.get(s_)
            if i is not None and i not in self.control:
                ids.append(i)
            else:
                ids += [self.byte_ids[b] for b in s_.encode("utf-8")]
        return ids

    def decode(self, ids) -> str:
        out = bytearray()
        for i in ids:
            i = int(i)
            if i in self.control:
                continue
            p = self.pieces[i]
            if i in self.byte_ids.values() and len(p) == 6 and p.startswith("<0x"):
                out.append(int(p[3:5], 16))
            else:
                out += p.replace("▁", " ").encode("utf-8")
        text = out.decode("utf-8", errors="replace")
        return text[1:] if self.add_space_prefix and text.startswith(" ") else text


class StreamDecoder:
    """Feeds generated ids one at a time and returns the new text each adds,
    holding back an incomplete UTF-8 character until its last byte arrives.

    Only a short window of ids is decoded per push (the ids since the last
    emitted text, plus the one before them for context, since decoders treat
    a leading space differently at the start), so streaming n tokens costs
    O(n), not O(n^2)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tok, self.ids = tokenizer, []
        self.prefix = 0  # ids[prefix:read] decode to text already emitted
        self.read = 0

    def push(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        before = self.tok.decode(self.ids[self.prefix:self.read]) if self.read > self.prefix else ""
        text = self.tok.decode(self.ids[self.prefix:])
        if text.endswith("\ufffd") or len(text) <= len(before) or not text.startswith(before):
            return ""  # a character still missing bytes, or nothing printable yet
        new = text[len(before):]
        self.prefix, self.read = self.read, len(self.ids)
        return new

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character decodes as U+FFFD)."""
        if self.read == len(self.ids):
            return ""
        before = self.tok.decode(self.ids[self.prefix:self.read]) if self.read > self.prefix else ""
        text = self.tok.decode(self.ids[self.prefix:])
        self.prefix = self.read = len(self.ids)
        return text[len(before):] if text.startswith(before) else ""


CHAT_TEMPLATE_FILE = "chat_template.jinja"  # transformers >= 4.43 with save_jinja_files; the default in 5
CHAT_TEMPLATE_DIR = "additional_chat_templates"  # the named templates beside it, one NAME.jinja each
PROCESSOR_CHAT_TEMPLATE_FILE = "chat_template.json"  # a processor's: {"chat_template": ...}


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """tokenizer.json (preferred) or tokenizer.model from a checkpoint folder;
    BOS/EOS from tokenizer_config.json / config.json; the chat template as
    read_chat_template finds it. A file that cannot be read is a
    ModelFileError naming it."""
    from .errors import reading

    folder = Path(folder)
    names = [n for n in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", CHAT_TEMPLATE_FILE,
                         CHAT_TEMPLATE_DIR, PROCESSOR_CHAT_TEMPLATE_FILE) if (folder / n).exists()]
    with reading(folder, "tokenizer (" + ", ".join(names or ["none"]) + ")"):
        return _load_tokenizer(folder)


def _load_tokenizer(folder: Path) -> Tokenizer:
    cfg = {}
    for name in ("config.json", "tokenizer_config.json"):
        if (folder / name).is_file():
            d = json.loads((folder / name).read_bytes().decode("utf-8"))
            if not isinstance(d, dict):
                raise ValueError(f"{name} is not a JSON object")
            cfg.update(d)
    tj = folder / "tokenizer.json"
    spec = json.loads(tj.read_bytes().decode("utf-8")) if tj.is_file() else None
    if spec is not None and not isinstance(spec, dict):
        raise ValueError("tokenizer.json is not a JSON object")
    added = {t["content"]: t["id"] for t in (spec or {}).get("added_tokens", [])}

    def tok_id(key_token, key_id):
        v = cfg.get(key_token)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str) and v in added:
            return added[v]
        return cfg.get(key_id)

    bos = tok_id("bos_token", "bos_token_id")
    eos = tok_id("eos_token", "eos_token_id")
    eos_ids = tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ())
    if spec is not None and (spec.get("model") or {}).get("type") == "BPE":
        tok = BPETokenizer(spec, bos, eos_ids)
        tok.origin = ("bytes", tj.read_bytes())
        # tokenizer.json's post-processor is where a BPE tokenizer says it prepends BOS (Llama 3 style)
        default_bos = bos is not None and tok.id_to_token.get(bos, "\0") in json.dumps(spec.get("post_processor"))
    elif (folder / "tokenizer.model").is_file():
        tok = SentencePieceTokenizer(folder / "tokenizer.model", bos, eos_ids)
        tok.origin = ("bytes", (folder / "tokenizer.model").read_bytes())
        default_bos = True  # SentencePiece (Llama, Gemma) checkpoints start every sequence with BOS
    else:
        raise FileNotFoundError(f"{folder}: no tokenizer.json (byte-level BPE) or tokenizer.model")
    tok.add_bos = bool(cfg.get("add_bos_token", default_bos)) and tok.bos_id is not None
    tok.chat_template = read_chat_template(folder)
    return tok


def read_chat_template(folder: str | Path) -> str | None:
    """The chat template of a checkpoint folder, where transformers 5's
    tokenizer finds it: chat_template.jinja and additional_chat_templates/
    (those files win over the config), else tokenizer_config.json's
    chat_template (a string, or a list of {"name", "template"}); pocketlm
    then takes a processor's chat_template.json, for checkpoints whose
    tokenizer has none. Of named templates, "default" is the one, as
    apply_chat_template takes it when no name is given; a set without one is
    refused, naming them, as transformers refuses it, rather than prompts
    going to the model unwrapped."""
    folder = Path(folder)
    named: dict = {}
    if (folder / CHAT_TEMPLATE_FILE).is_file():
        named["default"] = (folder / CHAT_TEMPLATE_FILE).read_bytes().decode("utf-8")
    if (folder / CHAT_TEMPLATE_DIR).is_dir():
        for f in sorted((folder / CHAT_TEMPLATE_DIR).glob("*.jinja")):
            named.setdefault(f.name[: -len(".jinja")], f.read_bytes().decode("utf-8"))
    if named:
        return _default_template(named, f"{CHAT_TEMPLATE_FILE} / {CHAT_TEMPLATE_DIR}/")
    for name in ("tokenizer_config.json", PROCESSOR_CHAT_TEMPLATE_FILE):
        if (folder / name).is_file():
            d = json.loads((folder / name).read_bytes().decode("utf-8"))
            if not isinstance(d, dict):
                raise ValueError(f"{name} is not a JSON object")
            if d.get("chat_template") is not None:
                return _default_template(d["chat_template"], f"{name}'s chat_template")
    return None


def _default_template(template, where: str) -> str:
    """The template to use of a chat_template value: a string, a list of
    {"name", "template"} (tokenizer_config.json's form of several) or a dict
    of name -> template."""
    if isinstance(template, list):
        if not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in template):
            raise ValueError(f"{where} is a list, but not of {{\"name\", \"template\"}} objects")
        template = {t["name"]: t.get("template") for t in template}
    if isinstance(template, dict):
        if "default" not in template:
            raise ValueError(f"{where} holds several chat templates ({', '.join(sorted(template))}) and none is "
                             "named 'default': name one 'default' (transformers' apply_chat_template refuses them too)")
        template = template["default"]
    if not isinstance(template, str):
        raise ValueError(f"{where} must be a string, got {type(template).__name__}")
    return template
