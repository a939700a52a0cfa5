"""The C tokenizers (native/src/text/tokenizer.c) against the Python ones, id for
id and text for text, on a few thousand lines of awkward text: llama.cpp's
GGUF vocabularies, the built-in SmolLM2, tokenizer.json in both pre-tokenizer
styles, and SentencePiece models (BPE and unigram, with and without the
dummy prefix and extra-whitespace removal)."""

import io

import pytest

from pocketlm.model.loader import load_model
from pocketlm.tokenizer import SentencePieceTokenizer, load_tokenizer
from tests.fixtures.llama_cpp import FIXTURES
from tests.fixtures.tokenizers import corpus, train_byte_level_bpe, train_sentencepiece

native = pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
LINES = corpus(2500, seed=7) + ["<|endoftext|>hi<|im_start|> x", "a<|im_start|>", "  <|endoftext|>  ", "\u2581x",
                                "<s>a</s>", "<unk>", "x" * 3000, " " * 500 + "\n" * 40, "\u00e9\u0301\u200d\U0001F600"]


def same(py, c):
    assert (c.bos_id, c.eos_ids, c.vocab_size) == (py.bos_id, py.eos_ids, py.vocab_size)
    for s in LINES:
        ids = py.encode(s, True)
        assert c.encode(s, True) == ids, s
        assert c.decode(ids) == py.decode(ids), s
    for text in ["<|endoftext|>", "<|im_start|>", "<s>", "</s>", "<unk>", "hello", "a"]:
        assert c.special_id(text) == py.special_id(text), text


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.gguf")), ids=lambda p: p.stem)
def test_llama_cpp_vocabularies(path):
    _, tok, _ = load_model(path)
    c = native.CTokenizer.from_gguf(path)
    same(tok, c)
    assert c.add_bos == tok.add_bos


def test_the_built_in_model():
    from pocketlm.builtin import default_model_path

    _, tok, _ = load_model(default_model_path())
    same(tok, native.CTokenizer.from_gguf(default_model_path()))


@pytest.mark.parametrize("style", ["gpt2", "split"])
def test_tokenizer_json(tmp_path, style):
    folder = train_byte_level_bpe(tmp_path, style)
    py = load_tokenizer(folder)
    same(py, native.CTokenizer.from_bytes((folder / "tokenizer.json").read_bytes(), py.bos_id, py.eos_ids))


@pytest.mark.parametrize("dummy_prefix", [True, False])
def test_sentencepiece_as_llama_and_gemma_train_it(tmp_path, dummy_prefix):
    folder = train_sentencepiece(tmp_path, add_dummy_prefix=dummy_prefix)
    py = load_tokenizer(folder)
    same(py, native.CTokenizer.from_bytes((folder / "tokenizer.model").read_bytes(), py.bos_id, py.eos_ids))


@pytest.mark.parametrize("model_type,extra_ws", [("unigram", False), ("unigram", True), ("bpe", True)])
def test_sentencepiece_unigram_and_whitespace_removal(model_type, extra_ws):
    import sentencepiece as spm

    m = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus(800, seed=3)), model_writer=m,
                                   vocab_size=250 if model_type == "unigram" else 400, model_type=model_type,
                                   byte_fallback=model_type == "bpe",
                                   character_coverage=0.98 if model_type == "unigram" else 1.0,
                                   normalization_rule_name="identity", remove_extra_whitespaces=extra_ws,
                                   minloglevel=2)
    same(SentencePieceTokenizer(m.getvalue()), native.CTokenizer.from_bytes(m.getvalue()))


def test_what_the_c_tokenizer_cannot_run_is_refused_by_name(tmp_path):
    import sentencepiece as spm

    m = io.BytesIO()  # the trainer's default normalizer: nmt_nfkc, a precompiled character map
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus(300, seed=3)), model_writer=m, vocab_size=150,
                                   minloglevel=2)
    with pytest.raises(ValueError, match="nmt_nfkc"):
        native.CTokenizer.from_bytes(m.getvalue(), what=str(tmp_path / "tok.model"))
    spec = b'{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": ' \
           b'{"type": "Split", "pattern": {"Regex": "(?<=a)b"}, "behavior": "Isolated"}}'
    with pytest.raises(ValueError, match="lookbehind"):
        native.CTokenizer.from_bytes(spec)


@pytest.mark.parametrize("pattern", [r"\w+|\s+|\W", r"[\w']+|\d|[^\w\s]+|\s+", r"(?i:\p{Lu}\w*)|\P{L}+|\w"])
def test_split_patterns_with_class_escapes(tmp_path, pattern):
    """\\w, \\d, \\s and their negations split as the regex module splits
    (\\w: letters, marks, Nd, Nl and Pc)."""
    import json

    folder = train_byte_level_bpe(tmp_path, "split")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = pattern
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    py = load_tokenizer(folder)
    c = native.CTokenizer.from_bytes((folder / "tokenizer.json").read_bytes(), py.bos_id, py.eos_ids)
    for s in LINES[:400] + ["a_b ٣ Ⅷ x\u0300y ‿ - x²", "ÀÉ straße İ"]:
        assert c.encode(s) == py.encode(s), s


@pytest.mark.parametrize("ignore_merges", [True, False])
def test_ignore_merges_as_hugging_face_tokenizers(tmp_path, ignore_merges):
    """tokenizer.json's model.ignore_merges (Llama-3 sets it): a word that is
    itself in the vocabulary is that one token, whatever the merges would
    make. Python and C give Hugging Face `tokenizers`' ids, and the flag
    survives conversion to GGUF."""
    import json

    from tokenizers import Tokenizer

    from pocketlm.model.gguf_file import tokenizer_metadata

    folder = train_byte_level_bpe(tmp_path, "split")
    spec = json.loads((folder / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    hf = Tokenizer.from_str(json.dumps(spec))
    # words BPE splits into several tokens, added whole (no merge makes them)
    words = [w for w in ("Ġphone", "Ġrunswe", "Ġcafé", "Ġtokens", "ĠPriv") if w not in vocab]
    words = [w for w in words if len(hf.encode(w.replace("Ġ", " ")).ids) > 1][:3] or ["Ġtokensx"]
    for w in words:
        vocab[w] = len(vocab) + len(spec["added_tokens"])
    spec["model"]["ignore_merges"] = ignore_merges
    text = json.dumps(spec)
    (folder / "tokenizer.json").write_text(text)
    hf = Tokenizer.from_str(text)
    py = load_tokenizer(folder)
    c = native.CTokenizer.from_bytes(text.encode(), py.bos_id, py.eos_ids)
    lines = LINES[:300] + [" phone runswe café tokens Priv", "x phone"]
    for s in lines:
        want = hf.encode(s, add_special_tokens=False).ids
        assert py.encode(s) == want, s
        assert c.encode(s) == want, s
    assert tokenizer_metadata(py)["ignore_merges"] is ignore_merges
    whole = [vocab[w] for w in words]
    got = py.encode(" phone runswe café tokens Priv")
    assert any(i in got for i in whole) == ignore_merges


@pytest.mark.parametrize("kind", ["llama", "gemma", "legacy-llama", "metaspace-bpe", "metaspace-bpe-nfkc", "unigram"])
def test_sentencepiece_style_tokenizer_json_matches_hugging_face(tmp_path, kind):
    """The C tokenizer on transformers 5's and `tokenizers`' SentencePiece-style
    tokenizer.json: 50k+ tokens of mixed-script text, id for id with `tokenizers`."""
    from tokenizers import Tokenizer

    from tests.fixtures.tokenizers import mixed_script
    from tests.test_tokenizer import ODD, sp_style

    folder = sp_style(kind, tmp_path / "tok")
    hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
    py = load_tokenizer(folder)
    c = native.CTokenizer.from_bytes((folder / "tokenizer.json").read_bytes(), py.bos_id, py.eos_ids)
    assert (c.bos_id, c.vocab_size) == (py.bos_id, py.vocab_size)
    n = 0
    for s in mixed_script(1500, seed=5) + ODD + LINES[:300]:
        want = hf.encode(s, add_special_tokens=False).ids
        n += len(want)
        assert c.encode(s) == want, s
        assert c.decode(want) == hf.decode(want, skip_special_tokens=False), s
    assert n > 50_000
    for text in ["<s>", "</s>", "<unk>", "<|turn|>", "<tool>", "hello"]:
        assert c.special_id(text) == py.special_id(text), text


def test_a_transformers_5_checkpoint_converts_to_a_gguf_both_engines_tokenize_alike(tmp_path):
    """A checkpoint folder with only tokenizer.json (save_pretrained of
    transformers 5) converts into a GGUF carrying llama.cpp's "llama"
    vocabulary and the exact tokenizer.json; Python and C read the latter and
    give `tokenizers`' ids."""
    import json

    from tokenizers import Tokenizer

    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from pocketlm.model.gguf_file import read_gguf
    from pocketlm.model.gguf_reader import GGUFFile
    from tests.fixtures import checkpoints
    from tests.fixtures.tokenizers import mixed_script, transformers_sentencepiece

    folder = checkpoints.llama(tmp_path / "ckpt", vocab_size=500)
    transformers_sentencepiece(folder, "LlamaTokenizer")
    assert not (folder / "tokenizer.model").exists()
    hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o")))
    _, _, tok, _ = read_gguf(path)
    c = native.CTokenizer.from_gguf(path)
    meta = GGUFFile(path)
    assert meta.field("tokenizer.ggml.model") == "llama" and len(meta.field("tokenizer.ggml.tokens")) == 500
    assert meta.field("tokenizer.ggml.add_space_prefix") is True
    assert json.loads(meta.field("tokenizer.huggingface.json")) == json.loads((folder / "tokenizer.json").read_text())
    for s in mixed_script(400, seed=2) + ["<s>hi</s>", ""]:
        want = hf.encode(s, add_special_tokens=False).ids
        assert tok.encode(s) == want == c.encode(s), s
        assert c.decode(want) == tok.decode(want) == hf.decode(want, skip_special_tokens=False), s
    assert (c.bos_id, c.eos_ids, c.add_bos) == (tok.bos_id, tok.eos_ids, tok.add_bos) == (1, (2,), False)


def test_a_normalizer_the_c_tokenizer_cannot_run_is_refused_by_name(tmp_path):
    import json

    from tests.fixtures.tokenizers import qwen2_tokenizer, train_metaspace

    for folder in (train_metaspace(tmp_path / "t"), qwen2_tokenizer(tmp_path / "q")):  # both kinds of tokenizer.json
        spec = json.loads((folder / "tokenizer.json").read_text())
        spec["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}
        with pytest.raises(ValueError, match="normalizer 'Lowercase'"):
            native.CTokenizer.from_bytes(json.dumps(spec).encode())
    spec = json.loads((folder / "tokenizer.json").read_text())  # Qwen2's: NFC, and a normalized added token
    spec["added_tokens"].append({"id": 3003, "content": "café", "special": False, "normalized": True})
    with pytest.raises(ValueError, match="added token 'café' is normalized"):
        native.CTokenizer.from_bytes(json.dumps(spec).encode())


@pytest.mark.parametrize("form", ["NFC", "NFD", "NFKC", "NFKD"])
def test_unicode_normalization_matches_unicodedata(form):
    """Every assigned code point (48 at a time) and random runs of starters,
    Hangul jamo and combining marks, through a byte-level tokenizer whose
    normalizer is the form (byte-level BPE decodes to exactly the normalized
    text): C gives unicodedata.normalize's text."""
    import json
    import random
    import unicodedata

    from pocketlm.tokenizer import bytes_to_unicode

    enc = bytes_to_unicode()
    spec = {"model": {"type": "BPE", "vocab": {enc[b]: b for b in range(256)}, "merges": []},
            "normalizer": {"type": form}, "decoder": {"type": "ByteLevel"},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}}
    c = native.CTokenizer.from_bytes(json.dumps(spec).encode())
    cps = [x for x in range(0x110000) if unicodedata.category(chr(x)) not in ("Cn", "Cs")]
    marks = [x for x in cps if unicodedata.combining(chr(x))]
    starters = [x for x in cps if unicodedata.decomposition(chr(x))] + list(range(0xAC00, 0xAC40)) + \
        list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3))
    rng = random.Random(0)
    lines = ["".join(map(chr, cps[i:i + 48])) for i in range(0, len(cps), 48)]
    lines += ["".join(chr(rng.choice(starters if rng.random() < 0.5 else marks)) for _ in range(rng.randint(1, 8)))
              for _ in range(5000)]
    from tests.fixtures.tokenizers import NOT_NFC

    for s in lines + NOT_NFC + ["plain ascii", ""]:
        assert c.decode(c.encode(s)) == unicodedata.normalize(form, s), [hex(ord(x)) for x in s]


@pytest.mark.parametrize("kind", ["qwen2", "phi4-mini"])
def test_qwen2_and_phi4_mini_tokenizer_json_match_hugging_face(tmp_path, kind):
    """The C tokenizer on Qwen2's (NFC, Qwen2's regex) and Phi-4-mini's (GPT-4o's
    regex) byte-level tokenizer.json: 50k+ tokens of mixed-script text, text
    NFC changes and chat markup, id for id with `tokenizers`."""
    from tokenizers import Tokenizer

    from tests.fixtures.tokenizers import mixed_script, not_nfc
    from tests.test_tokenizer import CHAT, ODD, byte_level

    folder = byte_level(kind, tmp_path / "tok")
    hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
    py = load_tokenizer(folder)
    c = native.CTokenizer.from_bytes((folder / "tokenizer.json").read_bytes(), py.bos_id, py.eos_ids)
    n = 0
    for s in mixed_script(1800, seed=5) + not_nfc(300, seed=4) + CHAT + ODD + LINES[:300]:
        want = hf.encode(s, add_special_tokens=False).ids
        n += len(want)
        assert c.encode(s) == want, s
        assert c.decode(want) == hf.decode(want, skip_special_tokens=False), s
    assert n > 50_000
    for text in ["<|endoftext|>", "<|im_start|>", "<|user|>", "<|end|>", "hello"]:
        assert c.special_id(text) == py.special_id(text), text


def test_a_qwen2_checkpoint_converts_to_a_gguf_that_keeps_its_nfc(tmp_path):
    """A Qwen2 checkpoint's GGUF carries its tokenizer.json normalizer
    (pocketlm.tokenizer.normalizer), so Python and C read back from the file
    tokenize text that is not NFC as `tokenizers` does."""
    import json

    from tokenizers import Tokenizer

    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from pocketlm.model.gguf_file import read_gguf
    from pocketlm.model.gguf_reader import GGUFFile
    from tests.fixtures import checkpoints
    from tests.fixtures.tokenizers import NOT_NFC, not_nfc, qwen2_tokenizer

    folder = checkpoints.qwen2(tmp_path / "ckpt", vocab_size=3003)
    qwen2_tokenizer(folder)
    hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o")))
    _, _, tok, _ = read_gguf(path)
    c = native.CTokenizer.from_gguf(path)
    assert json.loads(GGUFFile(path).field("pocketlm.tokenizer.normalizer")) == {"type": "NFC"}
    for s in not_nfc(300, seed=8) + NOT_NFC + ["<|im_start|>user\ne\u0301<|im_end|>"]:
        want = hf.encode(s, add_special_tokens=False).ids
        assert tok.encode(s) == want == c.encode(s), s
