"""Seed inputs for native/tests/fuzz_tokenizer.c, written into DIR:

    python tools/fuzz_tokenizer_seeds.py DIR

Mode 0 (first byte 0): tokenizer.json files trained with Hugging Face
`tokenizers` (GPT-2 and Llama-3 split styles, Metaspace BPE and Unigram),
transformers 5's SentencePiece-style Llama and Gemma tokenizer.json, Qwen2's
(NFC normalizer) and Phi-4-mini's (GPT-4o regex) byte-level tokenizer.json, and
a SentencePiece model trained with `sentencepiece`, as a .task's
TOKENIZER_MODEL entry holds them.
Mode 1: every pre-tokenizer regex pocketlm reads (Qwen2's and GPT-4o's too),
NUL, awkward text (some of it not in NFC).
Mode 2: awkward text for the GGUF vocabularies named by PLM_FUZZ_VOCABS.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pocketlm.model.gguf_file import LLAMA_CPP_PRE  # noqa: E402
from pocketlm.tokenizer import GPT2_PATTERN  # noqa: E402
from tests.fixtures.tokenizers import (corpus, mixed_script, not_nfc, phi4_mini_tokenizer,  # noqa: E402
                                      qwen2_tokenizer, train_byte_level_bpe, train_metaspace, train_sentencepiece,
                                      transformers_sentencepiece)


def patterns() -> set[str]:
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    out = {GPT2_PATTERN, r"\p{N}", GGUF_PRE_TOKENIZER_SPLITS["qwen2"], GGUF_PRE_TOKENIZER_SPLITS["gpt-4o"]}
    for spec in LLAMA_CPP_PRE.values():
        for step in spec.get("pretokenizers", [spec]):
            regex = (step.get("pattern") or {}).get("Regex")
            if regex:
                out.add(regex)
    return out


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(corpus(30, seed=3) + not_nfc(10, seed=3)).encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        for style in ("gpt2", "split"):
            folder = Path(tmp) / style
            folder.mkdir()
            train_byte_level_bpe(folder, style, vocab_size=300)
            (out / f"tokenizer-{style}.json").write_bytes(b"\0" + (folder / "tokenizer.json").read_bytes())
        # SentencePiece-style tokenizer.json: transformers 5's Llama / Gemma, tokenizers' Metaspace BPE and Unigram
        for name, make in (("llama", lambda f: transformers_sentencepiece(f, "LlamaTokenizer")),
                           ("gemma", lambda f: transformers_sentencepiece(f, "GemmaTokenizer")),
                           ("metaspace-bpe", lambda f: train_metaspace(f, "bpe")),
                           ("metaspace-bpe-nfkc", lambda f: train_metaspace(f, "bpe", nfkc=True)),
                           ("qwen2", lambda f: qwen2_tokenizer(f, vocab_size=600)),
                           ("phi4-mini", lambda f: phi4_mini_tokenizer(f, vocab_size=600)),
                           ("unigram", lambda f: train_metaspace(f, "unigram", prepend_scheme="first", split=False))):
            folder = make(Path(tmp) / name)
            (out / f"tokenizer-{name}.json").write_bytes(b"\0" + (folder / "tokenizer.json").read_bytes())
        sp = Path(tmp) / "sp"
        sp.mkdir()
        train_sentencepiece(sp)
        (out / "sentencepiece.model").write_bytes(b"\0" + next(sp.glob("*.model")).read_bytes())
    for i, pat in enumerate(sorted(patterns())):
        (out / f"regex-{i}").write_bytes(b"\1" + pat.encode("utf-8") + b"\0" + text[:400])
    for i, line in enumerate(corpus(20, seed=5) + mixed_script(10, seed=6) + not_nfc(10, seed=7)):
        (out / f"text-{i}").write_bytes(b"\2" + line.encode("utf-8"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
