"""Load time of a Gemma 3-sized (262,144-piece) SentencePiece-style BPE
tokenizer.json in Python and C, next to the 1 s limit. Python leaves the
merges unparsed until the first encode, whose time is printed too. The vocabulary is
generated in Gemma's real format (Replace normalizer, byte fallback, merges
whose every result is a piece) and checked by `tokenizers` loading it.

    python tests/benchmarks/bench_tokenizer_load.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

LIMIT_S = 1.0
TARGET_S = 0.5  # "well under" the limit
N = 262_144


def gemma_sized_spec(n: int = N) -> dict:
    """Pieces built by merges over a base alphabet, as BPE training grows them."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    base = ["\u2581"] + [chr(c) for c in range(0x21, 0x7F)] + [chr(c) for c in range(0x4E00, 0x4E00 + 2000)]
    for ch in base:
        vocab.setdefault(ch, len(vocab))
    pieces = list(base)
    merges = []
    j = 0
    while len(vocab) < n:  # each piece grows by three characters in turn: the list outruns j
        a = pieces[j]
        for r in range(3):
            b = base[(j * 31 + r * 677) % len(base)]
            if a + b not in vocab and len(vocab) < n:
                vocab[a + b] = len(vocab)
                merges.append([a, b])
                pieces.append(a + b)
        j += 1
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True} for t in specials],
            "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                              "invert": False},
            "post_processor": None,
            "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"},
                                                          "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]},
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}


def main() -> None:
    from tokenizers import Tokenizer

    from pocketlm.tokenizer import load_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = json.dumps(gemma_sized_spec(), ensure_ascii=False).encode("utf-8")
        (folder / "tokenizer.json").write_bytes(data)
        hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
        assert hf.get_vocab_size() == N
        t0 = time.perf_counter()
        py = load_tokenizer(folder)
        t_py = time.perf_counter() - t0
        text = "Hello world, 中文 and more text\n" * 20
        t0 = time.perf_counter()
        ids = py.encode(text)
        t_first = time.perf_counter() - t0
        assert ids == hf.encode(text, add_special_tokens=False).ids
        print(f"tokenizer.json {len(data) / 1e6:.1f} MB, {N} pieces")
        print(f"Python load_tokenizer: {t_py:.3f} s (limit {LIMIT_S} s, target {TARGET_S} s)")
        print(f"Python first encode (parses the merges, builds their table): {t_first:.3f} s")
        try:
            from pocketlm.kernels import native
        except ImportError:
            print("C: libpocketlm not built")
            return
        t0 = time.perf_counter()
        c = native.CTokenizer.from_bytes(data)
        t_c = time.perf_counter() - t0
        assert c.encode(text) == py.encode(text)
        print(f"C plm_tokenizer_from_bytes: {t_c:.3f} s (limit {LIMIT_S} s)")


if __name__ == "__main__":
    main()
