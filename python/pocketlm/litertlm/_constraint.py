"""Structured output: a ResponseFormat (JSON schema, regular expression, or
pocketlm's Lark grammar) compiled by llguidance, the library LiteRT-LM's
LL_GUIDANCE constraint provider runs, into a mask over the model's tokens at
every decode step. The mask is applied to the logits before sampling (in the
Python loop, and through plm_session_generate_masked in C), so the sampler
draws from what the grammar allows with its usual random stream.
"""

from __future__ import annotations

import numpy as np

from .interfaces import ResponseFormat

LARK = 3  # pocketlm's own ResponseFormat type (extras.grammar): a Lark grammar in llguidance's dialect


def _llguidance():
    try:
        import llguidance
        import llguidance.numpy  # noqa: F401
    except ImportError as e:
        raise ValueError("structured output (response_format) needs llguidance, the library LiteRT-LM's "
                         "LL_GUIDANCE provider uses: pip install llguidance") from e
    return llguidance


class _Vocabulary:
    """What llguidance needs of a tokenizer: every token's bytes as it reads in
    running text, and the special tokens. A token's bytes are taken from the
    tokenizer's own decoding after an ordinary token (so a word-start marker
    gives its space); a token that decodes to part of a UTF-8 character only
    (a byte-fallback piece) is offered to no grammar."""

    def __init__(self, tokenizer, n_vocab: int, eos_id: int, special_ids):
        anchor = tokenizer.encode("a")[-1:] or [0]
        base = tokenizer.decode(anchor)
        special = set(int(i) for i in special_ids)
        self.tokens: list[bytes] = []
        for t in range(n_vocab):
            if t in special or t >= tokenizer.vocab_size:
                self.tokens.append(b"\xff[" + str(t).encode() + b"]")
                continue
            text = tokenizer.decode(anchor + [t])
            piece = text[len(base):] if text.startswith(base) else tokenizer.decode([t])
            if not piece or "\ufffd" in piece:
                special.add(t)  # no text of its own: never allowed by a grammar
                self.tokens.append(b"\xff[" + str(t).encode() + b"]")
            else:
                self.tokens.append(piece.encode("utf-8"))
        self.eos_token_id, self.bos_token_id = eos_id, None
        self.special_token_ids = sorted(special)
        self._tok = tokenizer

    def __call__(self, s):
        return self._tok.encode(s.decode("utf-8", "replace") if isinstance(s, bytes) else s)


_CACHE: dict[int, object] = {}


def ll_tokenizer(engine):
    """The engine's vocabulary as an llguidance LLTokenizer, built once per engine."""
    key = id(engine)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is engine:
        return hit[1]
    llg = _llguidance()
    n_vocab = engine.model.cfg.vocab_size
    eos = min(engine.stop_ids) if engine.stop_ids else (engine.tokenizer.eos_ids or [0])[0]
    specials = set(engine.stop_ids) | ({engine.bos_id} if engine.bos_id is not None else set())
    vocab = _Vocabulary(engine.tokenizer, n_vocab, eos, specials)
    tok = llg.LLTokenizer(llg.TokenizerWrapper(vocab), n_vocab=n_vocab)
    _CACHE[key] = (engine, tok)
    return tok


def grammar_of(fmt: ResponseFormat) -> str:
    """llguidance's grammar for a ResponseFormat; a malformed one is a ValueError naming it."""
    llg = _llguidance()
    try:
        if fmt.type == ResponseFormat.Type.JSON_OBJECT:
            grammar = llg.LLMatcher.grammar_from_json_schema(fmt.schema_or_pattern)
        elif fmt.type == ResponseFormat.Type.REGEX:
            grammar = llg.LLMatcher.grammar_from_regex(fmt.schema_or_pattern)
        elif fmt.type == LARK:
            grammar = llg.LLMatcher.grammar_from_lark(fmt.schema_or_pattern)
        else:
            raise ValueError(f"response_format type {fmt.type!r} is neither JSON_OBJECT nor REGEX")
    except (ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"response_format {fmt.schema_or_pattern!r}: {e}") from e
    return grammar


class Constraint:
    """One response's mask: mask(logits) before each sample, accept(token)
    after it. The session's generate loops call these (engine/base.py's
    decode_hook); accept returns True to end the response (max_output_tokens)."""

    def __init__(self, engine, fmt: ResponseFormat | None, max_output_tokens: int | None):
        self.limit, self.count, self.matcher = max_output_tokens, 0, None
        if fmt is not None:
            llg = _llguidance()
            self.matcher = llg.LLMatcher(ll_tokenizer(engine), grammar_of(fmt))
            if self.matcher.is_error():
                raise ValueError(f"response_format {fmt.schema_or_pattern!r}: {self.matcher.get_error()}")
            self._bits = llg.numpy.allocate_token_bitmask(1, engine.model.cfg.vocab_size)
            self._allowed = np.zeros(engine.model.cfg.vocab_size, dtype=bool)

    @property
    def masks(self) -> bool:
        """Whether mask() changes anything (a response format), so loops may skip calling it."""
        return self.matcher is not None

    def mask(self, logits: np.ndarray) -> None:
        if self.matcher is None:
            return
        import llguidance.numpy as lnp

        lnp.fill_next_token_bitmask(self.matcher, self._bits, 0)
        words = self._bits[0].view(np.uint32)
        bits = np.unpackbits(words.view(np.uint8), bitorder="little")[: logits.shape[-1]].astype(bool)
        logits[~bits] = -np.inf

    def cut_short(self) -> bool:
        """Whether the response ended at max_output_tokens with its format not yet complete."""
        return self.matcher is not None and self.limit is not None and self.count >= self.limit \
            and not self.matcher.is_accepting()

    def accept(self, token: int) -> bool:
        self.count += 1
        if self.matcher is not None and not self.matcher.consume_token(int(token)):
            raise RuntimeError(f"token {token} was sampled outside the response format: {self.matcher.get_error()}")
        return self.limit is not None and self.count >= self.limit
