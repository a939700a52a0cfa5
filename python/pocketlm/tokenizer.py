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


class LazyMerges:
    """A tokenizer.json's model.merges still as its JSON text. The merges are
    most of a large file (Gemma 3's 262k) and only encoding needs them, so
    parse_tokenizer_json leaves them unparsed and the tokenizer parses them,
    and builds its merge table, on its first encode."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def parse(self) -> list:
        try:
            merges = json.loads(self.text)
        except ValueError as e:
            raise ValueError(f"tokenizer.json model.merges is not valid JSON: {e}") from None
        if not isinstance(merges, list):
            raise ValueError("tokenizer.json model.merges is not a list")
        return merges


def _merge_list(merges) -> list:
    return merges.parse() if isinstance(merges, LazyMerges) else list(merges or [])


_LAZY_SENTINEL = r'"\u0000pocketlm: merges parsed on first use"'  # JSON text of a string no file holds


def parse_tokenizer_json(text: str) -> dict:
    """json.loads of a tokenizer.json, except that model.merges is left a
    LazyMerges when it is where `tokenizers` writes it (the last key of model,
    the last key of the file): everything else is parsed, and checked to be
    that layout, and any other layout is parsed whole."""
    def back(i: int) -> int:  # i, less the whitespace before it
        while i > 0 and text[i - 1] in " \t\n\r":
            i -= 1
        return i

    close = len(text)
    for _ in range(2):  # "}}" (with any whitespace) closes model and the file
        close = back(close)
        if close == 0 or text[close - 1] != "}":
            return json.loads(text)
        close -= 1
    close = back(close)
    key = text.rfind('"merges"', 0, close)
    while key >= 0:  # the last "merges": [ (inside the array no object key can stand)
        start = key + len('"merges"')
        rest = text[start:start + 64].lstrip()
        if rest[:1] == ":" and rest[1:].lstrip()[:1] == "[":
            start = text.index("[", start)
            break
        key = text.rfind('"merges"', 0, key)
    if key < 0 or close == 0 or text[close - 1] != "]":
        return json.loads(text)
    spec = json.loads(text[:start] + _LAZY_SENTINEL + text[close:])
    model = spec.get("model") if isinstance(spec, dict) else None
    if (not isinstance(model, dict) or list(spec)[-1] != "model" or list(model)[-1:] != ["merges"]
            or model["merges"] != json.loads(_LAZY_SENTINEL)):
        return json.loads(text)  # the found array was not model.merges
    model["merges"] = LazyMerges(text[start:close])
    return spec


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
        self._merges_src, self._ranks = model.get("merges", []), None  # the rank table is built on first use
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
        self.normalizer_spec = spec.get("normalizer")  # Qwen2's NFC
        self.normalize = _normalizer(self.normalizer_spec)
        # added tokens are matched in the text as given; `tokenizers` matches a normalized one (normalized=true, the
        # default of a non-special token) after the normalizer instead, which only a normalizer makes different
        normed = [t["content"] for t in spec.get("added_tokens", [])
                  if t.get("normalized", not t.get("special", False))]
        if normed and self.normalize is not None:
            raise ValueError(f"tokenizer.json added token {normed[0]!r} is normalized (\"normalized\": true) and the "
                             f"normalizer is {self.normalizer_spec.get('type')!r}: matching added tokens after "
                             "normalization is not implemented for byte-level BPE (Qwen2's and Phi-4's are not "
                             "normalized)")
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
    def ranks(self) -> dict[tuple[str, str], int]:
        """(a, b) -> merge rank, built from the merges the first time it is needed."""
        if self._ranks is None:
            merges = _merge_list(self._merges_src)
            pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
            self._ranks = dict(zip(pairs, range(len(pairs))))
            self._merges_src = None
        return self._ranks

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
        ranks = self.ranks
        while len(parts) > 1:
            best = min(((ranks.get((a, b), 1 << 62), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))))
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
        if self.normalize is not None:
            text = self.normalize(text)
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


# White_Space, what Rust's char::is_whitespace and the regex crate's \s match (tokenizers' WhitespaceSplit,
# lstrip / rstrip of added tokens)
WHITE_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B))))


def _is_word_char(c: str) -> bool:
    """The regex crate's \\w: alphabetic, marks, decimal digits, connector punctuation, joiners."""
    import unicodedata

    cat = unicodedata.category(c)
    return c.isalpha() or cat[0] == "M" or cat in ("Nd", "Pc", "Nl") or c in "\u200c\u200d"


def _hex_byte(s: str) -> int | None:
    """u8::from_str_radix(s, 16), as tokenizers' ByteFallback decoder reads <0xXX>."""
    body = s[1:] if s[:1] == "+" else s
    return int(s, 16) if body and all(c in "0123456789abcdefABCDEF" for c in body) else None


def _json_pattern(pat: dict, what: str):
    """A tokenizers pattern ({"String": s} or {"Regex": r}) as a compiled regex."""
    if not isinstance(pat, dict) or not ({"String", "Regex"} & set(pat)):
        raise ValueError(f"{what}: pattern {pat!r} is neither a String nor a Regex")
    return regex.compile(pat["Regex"]) if "Regex" in pat else regex.compile(regex.escape(pat["String"]))


def _normalizer(spec, what="tokenizer.json normalizer"):
    """tokenizer.json's normalizer as a function of a string: Sequence, Prepend,
    Replace and the Unicode forms; anything else is refused by name."""
    import unicodedata

    if spec is None:
        return None
    t = spec.get("type")
    if t == "Sequence":
        steps = [_normalizer(x, what) for x in spec.get("normalizers", [])]
        steps = [f for f in steps if f is not None]

        def seq(s):
            for f in steps:
                s = f(s)
            return s
        return seq
    if t == "Prepend":
        pre = spec["prepend"]
        return lambda s: pre + s if s else s
    if t == "Replace":
        pat, content = _json_pattern(spec["pattern"], what), spec["content"]
        return lambda s: pat.sub(lambda m: content, s)
    if t in ("NFC", "NFKC", "NFD", "NFKD"):
        return lambda s: unicodedata.normalize(t, s)
    raise ValueError(f"unsupported {what} {t!r} (Sequence, Prepend, Replace, NFC, NFKC, NFD and NFKD are)")


def _split_spans(s: str, pat, behavior: str, invert: bool) -> list[str]:
    """tokenizers' NormalizedString.split: the matches of pat and the gaps
    between them, joined as behavior says; empty pieces dropped."""
    marks, prev = [], 0
    for m in pat.finditer(s):
        if m.start() != prev:
            marks.append([prev, m.start(), False])
        marks.append([m.start(), m.end(), True])
        prev = m.end()
    if prev != len(s):
        marks.append([prev, len(s), False])
    if invert:
        for mk in marks:
            mk[2] = not mk[2]
    out: list[list[int]] = []
    if behavior == "Isolated":
        out = [[a, b] for a, b, _ in marks]
    elif behavior == "Removed":
        out = [[a, b] for a, b, is_m in marks if not is_m]
    elif behavior == "Contiguous":
        prev_m = False
        for a, b, is_m in marks:
            if is_m == prev_m and out:
                out[-1][1] = b
            else:
                out.append([a, b])
            prev_m = is_m
    elif behavior == "MergedWithPrevious":
        prev_m = False
        for a, b, is_m in marks:
            if is_m and not prev_m and out:
                out[-1][1] = b
            else:
                out.append([a, b])
            prev_m = is_m
    elif behavior == "MergedWithNext":
        prev_m = False
        for a, b, is_m in reversed(marks):
            if is_m and not prev_m and out:
                out[-1][0] = a
            else:
                out.append([a, b])
            prev_m = is_m
        out.reverse()
    else:
        raise ValueError(f"unsupported Split behaviour {behavior!r}")
    return [s[a:b] for a, b in out if b > a]


class HFTokenizer(Tokenizer):
    """A SentencePiece-style tokenizer.json, as transformers 5 saves Llama,
    Gemma, Mistral and Phi-3 (no tokenizer.model beside it) and as `tokenizers`'
    trainers write them: added tokens split out (leftmost-longest, with their
    single_word / lstrip / rstrip / normalized flags), the normalizer
    (Prepend, Replace, Unicode forms), the pre-tokenizer (Metaspace, Split,
    WhitespaceSplit, Digits), then BPE (merges by rank over ids, byte_fallback,
    unk fusing, ignore_merges) or Unigram (Viterbi over the scores, byte_fallback),
    and the decoder chain (Replace, ByteFallback, Fuse, Strip, Metaspace) over
    every token, the added ones too. The post-processor's template says whether
    a sequence starts with BOS."""

    def __init__(self, spec: dict, bos_id: int | None = None, eos_ids: tuple[int, ...] = (),
                 extra_special: tuple = ()):
        model = spec.get("model") or {}
        self.model_type = model.get("type")
        if self.model_type == "BPE":
            self._init_bpe(model)
        elif self.model_type == "Unigram":
            self._init_unigram(model)
        else:
            raise ValueError(f"tokenizer.json model type {self.model_type!r} is not supported (BPE and Unigram are)")
        self.normalize = _normalizer(spec.get("normalizer"))
        self.pre_steps = self._pre_tokenizer(spec.get("pre_tokenizer"))
        self.decoders = self._decoder(spec.get("decoder"))
        # added tokens: id -> entry; content -> id
        self.added: dict[str, int] = {}
        self.added_info: dict[int, dict] = {}
        for t in spec.get("added_tokens", []):
            self._add_token(t)
        self.normalizer_spec = spec.get("normalizer")
        self.extra_special = tuple(extra_special)
        for t in extra_special:  # transformers 5's extra_special_tokens: special, never normalized
            content = t.get("content") if isinstance(t, dict) else t
            if not isinstance(content, str):
                raise ValueError(f"tokenizer_config.json extra_special_tokens entry {t!r} is not a string")
            if content and content not in self.added:
                i = self.model_vocab.get(content)
                if i is None:
                    i = max([len(self.model_vocab) - 1, *self.added_info]) + 1
                self._add_token({"id": i, "content": content, "special": True, "normalized": False})
        self.special_ids = {i for i, t in self.added_info.items() if t.get("special")}
        raw = self._raw_set
        self._raw_re = self._added_regex(sorted(raw))
        norm = [c for c in self.added if c not in raw]
        self._norm_map = {}
        for c in norm:
            nc = self.normalize(c) if self.normalize else c
            self._norm_map.setdefault(nc, self.added[c])
        self._norm_re = self._added_regex(list(self._norm_map)) if self._norm_map else None
        self.id_to_token = dict(self.model_id_to_token)
        # a normalized added token reads back as its normalized text, as tokenizers gives it
        self.id_to_token.update({i: t["content"] if t["content"] in raw or not self.normalize else
                                 self.normalize(t["content"]) for i, t in self.added_info.items()})
        self.prefix, suffix = self._template(spec.get("post_processor"))
        if suffix:
            raise ValueError(f"tokenizer.json post_processor appends {[self.id_to_token.get(i) for i in suffix]} after "
                             "the text; a causal LM's prompt cannot end in it")
        if len(self.prefix) > 1:
            raise ValueError(f"tokenizer.json post_processor starts a sequence with {len(self.prefix)} tokens "
                             f"{[self.id_to_token.get(i) for i in self.prefix]}; only a single BOS is supported")
        if self.prefix and bos_id is None:
            bos_id = self.prefix[0]
        if self.prefix and self.prefix[0] != bos_id:
            raise ValueError(f"tokenizer.json post_processor starts a sequence with {self.id_to_token.get(self.prefix[0])!r}"
                             f", not the bos_token {self.id_to_token.get(bos_id)!r}")
        self.bos_id, self.eos_ids = bos_id, tuple(eos_ids)
        self.add_bos = bool(self.prefix)

    # ---- construction

    def _init_bpe(self, m: dict) -> None:
        for key in ("continuing_subword_prefix", "end_of_word_suffix"):
            if m.get(key):
                raise ValueError(f"tokenizer.json BPE {key}={m[key]!r} is not supported")
        if m.get("dropout") not in (None, 0, 0.0):
            raise ValueError(f"tokenizer.json BPE dropout={m['dropout']!r} is not supported (it samples a different "
                             "tokenization each call; only dropout=null is)")
        self.model_vocab: dict[str, int] = dict(m["vocab"])
        self.model_id_to_token = {i: t for t, i in self.model_vocab.items()}
        self._merges_src, self._merges = m.get("merges", []), None  # the merge table is built on first use
        self.byte_fallback = bool(m.get("byte_fallback", False))
        self.fuse_unk = bool(m.get("fuse_unk", False))
        self.ignore_merges = bool(m.get("ignore_merges", False))
        unk = m.get("unk_token")
        if unk is not None and unk not in self.model_vocab:
            raise ValueError(f"tokenizer.json BPE unk_token {unk!r} is not in the vocabulary")
        self.unk_id = None if unk is None else self.model_vocab[unk]
        self.byte_ids = [self.model_vocab.get(f"<0x{b:02X}>") for b in range(256)]

    @property
    def merges(self) -> dict[tuple[int, int], tuple[int, int]]:
        """(id a, id b) -> (rank, id of a+b), built the first time it is needed, with map() over
        the lists: Gemma 3 has 262k merges."""
        if self._merges is not None:
            return self._merges
        from operator import itemgetter

        pairs = [mg.split(" ", 1) if isinstance(mg, str) else mg for mg in _merge_list(self._merges_src)]
        if any(len(x) != 2 for x in pairs):
            raise ValueError("tokenizer.json has a merge that is not a pair")
        left, right = list(map(itemgetter(0), pairs)), list(map(itemgetter(1), pairs))
        get = self.model_vocab.get
        ia, ib, iab = list(map(get, left)), list(map(get, right)), list(map(get, map(str.__add__, left, right)))
        if None in ia or None in ib or None in iab:
            k = next(k for k in range(len(pairs)) if None in (ia[k], ib[k], iab[k]))
            raise ValueError(f"tokenizer.json merge {left[k]!r} {right[k]!r} names a token outside the vocabulary")
        self._merges = dict(zip(zip(ia, ib), zip(range(len(iab)), iab)))
        self._merges_src = None
        return self._merges

    def _init_unigram(self, m: dict) -> None:
        vocab = m.get("vocab") or []
        self.pieces = [p for p, _ in vocab]
        self.scores = [float(s) for _, s in vocab]
        self.model_vocab = {p: i for i, p in enumerate(self.pieces)}  # the last of equal pieces, as tokenizers
        self.model_id_to_token = dict(enumerate(self.pieces))
        self.unk_id = m.get("unk_id")
        if self.unk_id is not None and not 0 <= self.unk_id < len(self.pieces):
            raise ValueError(f"tokenizer.json Unigram unk_id {self.unk_id} is outside the vocabulary")
        self.byte_fallback = bool(m.get("byte_fallback", False))
        self.min_score = min(self.scores) if self.scores else 0.0
        self.max_len = max((len(p) for p in self.pieces), default=1)
        self.byte_ids = [self.model_vocab.get(f"<0x{b:02X}>") for b in range(256)]

    def _add_token(self, t: dict) -> None:
        i, content = t.get("id"), t.get("content")
        if not isinstance(i, int) or i < 0 or not isinstance(content, str):
            raise ValueError(f"tokenizer.json added_tokens entry {t!r} has no id or content")
        if content in self.added:  # tokenizers keeps the later id for the text
            self.added_info.pop(self.added[content], None)
        self.added[content] = i
        self.added_info[i] = t

    @property
    def _raw_set(self) -> set:
        # tokenizers' AddedToken::from: a special token is matched before normalization unless it says otherwise
        return {c for c, i in self.added.items()
                if not self.added_info[i].get("normalized", not self.added_info[i].get("special", False))}

    @staticmethod
    def _added_regex(contents: list[str]):
        contents = [c for c in contents if c]
        if not contents:
            return None
        # leftmost-longest: at each position the longest content wins
        return regex.compile("|".join(regex.escape(c) for c in sorted(contents, key=len, reverse=True)))

    def _pre_tokenizer(self, pre) -> list:
        if pre is None:
            return []
        steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
        out = []
        for st in steps:
            t = st.get("type")
            if t == "Metaspace":
                rep = st.get("replacement", "\u2581")
                scheme = st.get("prepend_scheme", "always" if st.get("add_prefix_space", True) else "never")
                if scheme not in ("always", "first", "never"):
                    raise ValueError(f"unsupported Metaspace prepend_scheme {scheme!r}")
                out.append(("metaspace", rep, scheme, bool(st.get("split", True))))
            elif t == "Split":
                if st.get("behavior") not in ("Isolated", "Removed", "MergedWithPrevious", "MergedWithNext",
                                              "Contiguous"):
                    raise ValueError(f"unsupported Split pre-tokenizer behaviour {st.get('behavior')!r}")
                out.append(("split", _json_pattern(st["pattern"], "Split pre-tokenizer"), st["behavior"],
                            bool(st.get("invert", False))))
            elif t == "WhitespaceSplit":
                out.append(("split", regex.compile("[" + "".join(sorted(WHITE_SPACE)) + "]"), "Removed", False))
            elif t == "Digits":
                out.append(("split", regex.compile(r"\p{N}"),
                            "Isolated" if st.get("individual_digits") else "Contiguous", False))
            else:
                raise ValueError(f"unsupported pre-tokenizer {t!r} in a SentencePiece-style tokenizer.json "
                                 "(Metaspace, Split, WhitespaceSplit and Digits are)")
        return out

    @staticmethod
    def _decoder(dec) -> list:
        if dec is None:
            return []
        steps = dec.get("decoders", []) if dec.get("type") == "Sequence" else [dec]
        out = []
        for st in steps:
            t = st.get("type")
            if t == "Replace":
                out.append(("replace", _json_pattern(st["pattern"], "Replace decoder"), st["content"]))
            elif t in ("ByteFallback", "Fuse"):
                out.append((t.lower(),))
            elif t == "Strip":
                out.append(("strip", st["content"], int(st.get("start", 0)), int(st.get("stop", 0))))
            elif t == "Metaspace":
                scheme = st.get("prepend_scheme", "always" if st.get("add_prefix_space", True) else "never")
                out.append(("metaspace", st.get("replacement", "\u2581"), scheme))
            else:
                raise ValueError(f"unsupported decoder {t!r} (Replace, ByteFallback, Fuse, Strip and Metaspace are)")
        return out

    def _template(self, post) -> tuple[list[int], list[int]]:
        """The ids the post-processor puts before and after a single sequence."""
        if post is None:
            return [], []
        t = post.get("type")
        if t == "Sequence":
            pre, suf = [], []
            for p in post.get("processors", []):
                a, b = self._template(p)
                pre, suf = pre + a, b + suf
            return pre, suf
        if t == "ByteLevel":
            return [], []
        if t != "TemplateProcessing":
            raise ValueError(f"unsupported post_processor {t!r} (TemplateProcessing is)")
        specials = post.get("special_tokens", {})
        pre, suf, seen = [], [], False
        for item in post.get("single", []):
            if "Sequence" in item:
                seen = True
                continue
            name = item["SpecialToken"]["id"]
            ids = specials.get(name, {}).get("ids")
            if ids is None:
                raise ValueError(f"tokenizer.json post_processor names special token {name!r} without ids")
            (suf if seen else pre).extend(ids)
        return pre, suf

    # ---- the interface

    @property
    def vocab_size(self) -> int:
        return max(self.id_to_token) + 1

    def special_id(self, text: str) -> int | None:
        return self.added.get(text)

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = list(self.prefix) if add_bos and self.prefix else []
        for piece, tid, at_start in self._segments(text):
            if tid is not None:
                ids.append(tid)
            else:
                for word in self._pre_tokenize(piece, at_start):
                    ids += self._model(word)
        return ids

    def _find_added(self, s: str, pat, lookup) -> list:
        """(text, id or None) covering s, as AddedVocabulary.find_matches splits it."""
        if pat is None or not s:
            return [(s, None, 0)]
        out, start_offset = [], 0
        for m in pat.finditer(s):
            start, stop = m.start(), m.end()
            tid = lookup[m.group()]
            info = self.added_info[tid]
            if info.get("single_word"):
                if (start > 0 and _is_word_char(s[start - 1])) or (stop < len(s) and _is_word_char(s[stop])):
                    continue
            if info.get("lstrip"):
                k = start
                while k > 0 and s[k - 1] in WHITE_SPACE:
                    k -= 1
                start = max(k, start_offset)
            if info.get("rstrip"):
                while stop < len(s) and s[stop] in WHITE_SPACE:
                    stop += 1
            if start_offset < start:
                out.append((s[start_offset:start], None, start_offset))
            out.append((s[start:stop], tid, start))
            start_offset = stop
        if start_offset != len(s):
            out.append((s[start_offset:], None, start_offset))
        return out

    def _segments(self, text: str):
        """(text, added id or None, whether it starts the input) in order."""
        for raw, tid, off in self._find_added(text, self._raw_re, self.added):
            if tid is not None:
                yield raw, tid, off == 0
                continue
            norm = self.normalize(raw) if self.normalize else raw
            for piece, tid2, off2 in self._find_added(norm, self._norm_re, self._norm_map):
                if piece or tid2 is not None:
                    yield piece, tid2, off == 0 and off2 == 0

    def _pre_tokenize(self, s: str, at_start: bool) -> list[str]:
        pieces = [(s, at_start)]
        for st in self.pre_steps:
            out = []
            for p, first in pieces:
                if st[0] == "metaspace":
                    _, rep, scheme, split = st
                    p = p.replace(" ", rep)
                    if scheme == "always" or (scheme == "first" and first):
                        if not p.startswith(rep):
                            p = rep + p
                    parts = _split_spans(p, regex.compile(regex.escape(rep)), "MergedWithNext", False) if split else [p]
                else:
                    parts = _split_spans(p, st[1], st[2], st[3])
                # only a piece at the start of its text still starts the input
                pos = 0
                for q in parts:
                    k = p.find(q, pos)
                    out.append((q, first and k == 0))
                    pos = k + len(q)
            pieces = [x for x in out if x[0]]
        return [p for p, _ in pieces]

    def _model(self, word: str) -> list[int]:
        return self._bpe_word(word) if self.model_type == "BPE" else self._unigram_word(word)

    def _bpe_word(self, word: str) -> list[int]:
        import heapq

        if self.ignore_merges and word in self.model_vocab:
            return [self.model_vocab[word]]
        sym: list[int] = []
        unk = None  # pending unknown symbol
        for c in word:
            i = self.model_vocab.get(c)
            if i is not None:
                if unk is not None:
                    sym.append(unk)
                    unk = None
                sym.append(i)
                continue
            if self.byte_fallback:
                bs = [self.byte_ids[b] for b in c.encode("utf-8")]
                if all(b is not None for b in bs):
                    sym += bs
                    continue
            if self.unk_id is not None:
                if unk is not None and not self.fuse_unk:
                    sym.append(unk)
                unk = self.unk_id
        if unk is not None:
            sym.append(unk)
        n = len(sym)
        if n < 2 or not self.merges:
            return sym
        # Word::merge_all: a min-heap of (rank, position); stale entries skipped
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        alive = [True] * n
        merges = self.merges
        heap = []
        for i in range(n - 1):
            m = merges.get((sym[i], sym[i + 1]))
            if m is not None:
                heap.append((m[0], i, m[1]))
        heapq.heapify(heap)
        while heap:
            rank, pos, new_id = heapq.heappop(heap)
            if not alive[pos] or nxt[pos] >= n:
                continue
            r = nxt[pos]
            m = merges.get((sym[pos], sym[r]))
            if m is None or m[1] != new_id:
                continue
            sym[pos] = new_id
            alive[r] = False
            nxt[pos] = nxt[r]
            if nxt[r] < n:
                prev[nxt[r]] = pos
            if prev[pos] >= 0:
                m = merges.get((sym[prev[pos]], new_id))
                if m is not None:
                    heapq.heappush(heap, (m[0], prev[pos], m[1]))
            if nxt[pos] < n:
                m = merges.get((new_id, sym[nxt[pos]]))
                if m is not None:
                    heapq.heappush(heap, (m[0], pos, m[1]))
        return [s_ for s_, a in zip(sym, alive) if a]

    def _unigram_word(self, s: str) -> list[int]:
        n = len(s)
        if not n:
            return []
        unk_score = self.min_score - 10.0
        best = [0.0] * (n + 1)
        start = [-1] * (n + 1)
        tok = [0] * (n + 1)
        start[0] = 0
        vocab, scores, max_len = self.model_vocab, self.scores, self.max_len
        for i in range(n):
            base = best[i]
            single = False
            for e in range(i + 1, min(n, i + max_len) + 1):
                j = vocab.get(s[i:e])
                if j is None:
                    continue
                cand = scores[j] + base
                if start[e] < 0 or cand > best[e]:
                    best[e], start[e], tok[e] = cand, i, j
                if e == i + 1:
                    single = True
            if not single:
                if self.unk_id is None:
                    raise ValueError(f"Unigram tokenizer without unk_id cannot encode {s[i]!r}")
                cand = unk_score + base
                if start[i + 1] < 0 or cand > best[i + 1]:
                    best[i + 1], start[i + 1], tok[i + 1] = cand, i, self.unk_id
        strings: list[str] = []
        e, fused = n, []
        while e > 0:
            b = start[e]
            if tok[e] == self.unk_id:
                fused.append(s[b:e])
            else:
                if fused:
                    strings.append("".join(reversed(fused)))
                    fused = []
                strings.append(s[b:e])
            e = b
        if fused:
            strings.append("".join(reversed(fused)))
        ids = []
        for piece in reversed(strings):
            j = vocab.get(piece)
            if j is not None:
                ids.append(j)
                continue
            if self.byte_fallback:
                bs = [self.byte_ids[b] for b in piece.encode("utf-8")]
                if all(b is not None for b in bs):
                    ids += bs
                    continue
            ids.append(self.unk_id)
        return ids

    def decode(self, ids, skip_special: bool = False) -> str:
        tokens = []
        for i in ids:
            i = int(i)
            t = self.id_to_token.get(i)
            if t is None:
                raise ValueError(f"token id {i} is outside the vocabulary")
            if skip_special and i in self.special_ids:
                continue
            tokens.append(t)
        for st in self.decoders:
            tokens = self._decode_step(st, tokens)
        return "".join(tokens)

    @staticmethod
    def _decode_step(st, tokens: list[str]) -> list[str]:
        kind = st[0]
        if kind == "replace":
            return [st[1].sub(lambda m: st[2], t) for t in tokens]
        if kind == "fuse":
            return ["".join(tokens)]
        if kind == "strip":
            _, content, start, stop = st
            out = []
            for t in tokens:
                a = 0
                while a < start and a < len(t) and t[a] == content:
                    a += 1
                z = 0
                while z < stop and z < len(t) - a and t[len(t) - 1 - z] == content:
                    z += 1
                # tokenizers takes len(bytes) - cuts characters after the start cut
                out.append(t[a:][: len(t.encode("utf-8")) - a - z])
            return out
        if kind == "metaspace":
            _, rep, scheme = st
            return [t.replace(rep, "" if k == 0 and scheme != "never" else " ") for k, t in enumerate(tokens)]
        if kind == "bytefallback":
            out, buf = [], bytearray()

            def flush():
                if buf:
                    try:
                        out.append(buf.decode("utf-8"))
                    except UnicodeDecodeError:
                        out.extend("\ufffd" * len(buf))
                    buf.clear()
            for t in tokens:
                if len(t) == 6 and t.startswith("<0x") and t.endswith(">") and _hex_byte(t[3:5]) is not None:
                    buf.append(_hex_byte(t[3:5]))
                    continue
                flush()
                out.append(t)
            flush()
            return out
        raise AssertionError(kind)


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


def load_tokenizer(folder: str | Path, tokenizer_json: str | Path | None = None, config: dict | None = None) -> Tokenizer:
    """tokenizer.json (preferred) or tokenizer.model from a checkpoint folder;
    BOS/EOS from tokenizer_config.json / config.json; the chat template as
    read_chat_template finds it. tokenizer_json: a tokenizer.json file to read
    instead of the folder's (whatever its name); config: a config.json's
    settings to start from (the checkpoint's, when the tokenizer lies
    elsewhere), which the folder's files override. A file that cannot be read
    is a ModelFileError naming it."""
    from .errors import reading

    folder = Path(folder)
    names = [n for n in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", CHAT_TEMPLATE_FILE,
                         CHAT_TEMPLATE_DIR, PROCESSOR_CHAT_TEMPLATE_FILE) if (folder / n).exists()]
    if tokenizer_json is not None:
        names = [Path(tokenizer_json).name] + [n for n in names if n not in ("tokenizer.json", "tokenizer.model")]
    with reading(folder, "tokenizer (" + ", ".join(names or ["none"]) + ")"):
        return _load_tokenizer(folder, Path(tokenizer_json) if tokenizer_json is not None else None, config)


def is_tokenizer_json(path: str | Path) -> bool:
    """Whether a file holds JSON (a tokenizer.json) rather than a SentencePiece
    model (a protobuf, whose first byte is a field tag), by its first bytes."""
    with open(path, "rb") as f:
        head = f.read(64)
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1] == b"{"


def _load_tokenizer(folder: Path, tj: Path | None = None, config: dict | None = None) -> Tokenizer:
    cfg = dict(config or {})
    for name in ("config.json", "tokenizer_config.json"):
        if (folder / name).is_file():
            d = json.loads((folder / name).read_bytes().decode("utf-8"))
            if not isinstance(d, dict):
                raise ValueError(f"{name} is not a JSON object")
            cfg.update(d)
    only_json = tj is not None  # a tokenizer.json named by the caller: never the folder's tokenizer.model
    tj = tj if tj is not None else folder / "tokenizer.json"
    tj_bytes = tj.read_bytes() if tj.is_file() else None
    spec = parse_tokenizer_json(tj_bytes.decode("utf-8")) if tj_bytes is not None else None
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
    if spec is not None and not is_byte_level(spec):
        extra = cfg.get("extra_special_tokens") or ()
        if isinstance(extra, dict):  # transformers 5 also writes {name: token}
            extra = list(extra.values())
        if not isinstance(extra, (list, tuple)):
            raise ValueError(f"tokenizer_config.json extra_special_tokens must be a list, got {type(extra).__name__}")
        tok = HFTokenizer(spec, bos, eos_ids, tuple(extra))
        tok.origin = ("bytes", tj_bytes)
        tok.chat_template = read_chat_template(folder)
        return tok  # add_bos: the post-processor's template, as transformers 5 applies it
    if spec is not None and (spec.get("model") or {}).get("type") == "BPE":
        tok = BPETokenizer(spec, bos, eos_ids)
        tok.origin = ("bytes", tj_bytes)
        # tokenizer.json's post-processor is where a BPE tokenizer says it prepends BOS (Llama 3 style)
        default_bos = bos is not None and tok.id_to_token.get(bos, "\0") in json.dumps(spec.get("post_processor"))
    elif (folder / "tokenizer.model").is_file() and not only_json:
        tok = SentencePieceTokenizer(folder / "tokenizer.model", bos, eos_ids)
        tok.origin = ("bytes", (folder / "tokenizer.model").read_bytes())
        default_bos = True  # SentencePiece (Llama, Gemma) checkpoints start every sequence with BOS
    else:
        raise FileNotFoundError(f"{folder}: no tokenizer.json (byte-level BPE) or tokenizer.model")
    tok.add_bos = bool(cfg.get("add_bos_token", default_bos)) and tok.bos_id is not None
    tok.chat_template = read_chat_template(folder)
    return tok


def is_byte_level(spec: dict) -> bool:
    """Whether a tokenizer.json is byte-level BPE (GPT-2's byte alphabet; BPETokenizer), rather than
    SentencePiece-style (HFTokenizer)."""
    def has(node, key):
        if not isinstance(node, dict):
            return False
        if node.get("type") == "ByteLevel":
            return True
        return any(has(x, key) for x in node.get(key, []))
    return (spec.get("model") or {}).get("type") == "BPE" and (
        has(spec.get("pre_tokenizer"), "pretokenizers") or has(spec.get("decoder"), "decoders"))


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
