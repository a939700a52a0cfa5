"""Tokenizers agree with Hugging Face's on ordinary and tricky text."""

import pytest

from pocketlm.tokenizer import BPETokenizer, SentencePieceTokenizer, StreamDecoder, load_tokenizer
from tests.fixtures.tokenizers import corpus, train_byte_level_bpe, train_sentencepiece

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module", params=["gpt2", "split"])
def bpe(request, tmp_path_factory):
    folder = train_byte_level_bpe(tmp_path_factory.mktemp(request.param), request.param)
    return load_tokenizer(folder), tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))


def test_bpe_encode_decode_match_hugging_face(bpe):
    ours, hf = bpe
    assert isinstance(ours, BPETokenizer)
    texts = corpus(400, seed=7) + ["<|im_start|>user\nhi<|endoftext|>", "a<|endoftext|>b"]
    for t in texts:
        want = hf.encode(t, add_special_tokens=False).ids
        assert ours.encode(t) == want, repr(t)
        assert ours.decode(want) == hf.decode(want, skip_special_tokens=False), repr(t)
        assert ours.decode(want) == t


def test_stream_decoder_never_splits_a_character(bpe):
    ours, _ = bpe
    text = "emoji 👍🏽 and 中文 and café"
    stream = StreamDecoder(ours)
    pieces = [stream.push(i) for i in ours.encode(text)]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_sentencepiece_round_trip_and_bos(tmp_path):
    folder = train_sentencepiece(tmp_path / "sp")
    tok = load_tokenizer(folder)
    assert isinstance(tok, SentencePieceTokenizer)
    for t in corpus(100, seed=3):
        ids = tok.encode(t)
        # identity normalization keeps every character; only the dummy-prefix space is dropped again on decode
        assert tok.decode(ids) == t
    assert tok.encode("hi", add_bos=True)[0] == tok.bos_id == 1
    stream = StreamDecoder(tok)
    text = "naïve 👍🏽 中文"
    assert "".join(stream.push(i) for i in tok.encode(text)) == text


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        load_tokenizer(tmp_path)


# SentencePiece-style tokenizer.json: what transformers 5 saves for Llama / Gemma / Mistral / Phi-3 (no
# tokenizer.model), the older Prepend + Replace form, and `tokenizers`' own Metaspace trainers
def sp_style(kind: str, folder):
    from tests.fixtures import tokenizers as fx

    if kind == "llama":
        return fx.transformers_sentencepiece(folder, "LlamaTokenizer")
    if kind == "gemma":
        return fx.transformers_sentencepiece(folder, "GemmaTokenizer")
    if kind == "legacy-llama":
        return fx.legacy_llama(folder, fx.transformers_sentencepiece(folder.parent / "src", "LlamaTokenizer"))
    if kind == "metaspace-bpe":
        return fx.train_metaspace(folder, "bpe")
    if kind == "metaspace-bpe-nfkc":
        return fx.train_metaspace(folder, "bpe", nfkc=True)
    return fx.train_metaspace(folder, "unigram", prepend_scheme="first", split=False)


SP_KINDS = ["llama", "gemma", "legacy-llama", "metaspace-bpe", "metaspace-bpe-nfkc", "unigram"]
ODD = ["<s>a</s>", "  <s>  x", "\u2581x", "x" * 3000, " " * 50 + "\n" * 5, "é\u0301\u200d😀", "<unk>", "ab<s>",
       "\u2581\u2581ab  c", "a <|turn|>  b", "x<tool> <tool> y", "ﬁx fix", "GGUF  x", "aGGUFb", "<0x41>", ""]


@pytest.fixture(scope="module", params=SP_KINDS)
def sp_json(request, tmp_path_factory):
    folder = sp_style(request.param, tmp_path_factory.mktemp(request.param) / "tok")
    return request.param, folder, tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))


def test_sentencepiece_style_tokenizer_json_matches_hugging_face(sp_json):
    """50k+ tokens of mixed-script text (Latin, CJK, Arabic, Devanagari, emoji,
    digits, whitespace runs, characters only byte fallback covers), id for id
    with `tokenizers` (its post-processor included), and decoding as it decodes."""
    from pocketlm.tokenizer import HFTokenizer
    from tests.fixtures.tokenizers import mixed_script

    kind, folder, hf = sp_json
    ours = load_tokenizer(folder)
    assert isinstance(ours, HFTokenizer)
    n = 0
    for t in mixed_script(1500, seed=5) + corpus(200, seed=3) + ODD:
        want = hf.encode(t).ids
        n += len(want)
        assert ours.encode(t, add_bos=True) == want, repr(t)
        assert ours.decode(want) == hf.decode(want, skip_special_tokens=False), repr(t)
    assert n > 50_000
    assert ours.add_bos == (kind == "legacy-llama")  # only its template starts with <s>


def test_transformers_5_checkpoint_without_tokenizer_model_round_trips(tmp_path):
    from tests.fixtures.tokenizers import mixed_script, transformers_sentencepiece

    folder = transformers_sentencepiece(tmp_path / "llama")
    tok = load_tokenizer(folder)
    for t in mixed_script(200, seed=1):
        # byte fallback covers every character; the decoder's Strip drops one leading space, as transformers does
        assert tok.decode(tok.encode(t)) == (t[1:] if t.startswith(" ") else t)
    stream = StreamDecoder(tok)
    text = "naïve 👍🏽 中文 नमस्ते"
    assert "".join(stream.push(i) for i in tok.encode(text)) == text
    assert tok.bos_id == 1 and tok.eos_ids == (2,)


def test_extra_special_tokens_split_out_as_transformers_5_adds_them(tmp_path):
    import json

    from transformers import AutoTokenizer

    from tests.fixtures.tokenizers import transformers_sentencepiece

    folder = transformers_sentencepiece(tmp_path / "llama")
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["extra_special_tokens"] = ["<0x03>", "<brand_new>"]  # one in the vocabulary, one new
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    ref = AutoTokenizer.from_pretrained(folder)
    ours = load_tokenizer(folder)
    for t in ["x<0x03>y <brand_new> z", "<brand_new><0x03>", "hello world"]:
        assert ours.encode(t) == ref(t, add_special_tokens=False).input_ids, t
    assert ours.special_id("<brand_new>") == ref.convert_tokens_to_ids("<brand_new>")


@pytest.mark.parametrize("edit,match", [
    (lambda s: s["model"].update(dropout=0.1), "dropout"),
    (lambda s: s.update(normalizer={"type": "Lowercase"}), "Lowercase"),
    (lambda s: s.update(pre_tokenizer={"type": "Punctuation"}), "Punctuation"),
    (lambda s: s.update(decoder={"type": "WordPiece"}), "WordPiece"),
    (lambda s: s.update(post_processor={"type": "TemplateProcessing", "single": [
        {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "special_tokens": {"</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}), "appends"),
])
def test_what_changes_the_ids_and_is_not_implemented_is_refused_by_name(tmp_path, edit, match):
    import json

    from pocketlm.tokenizer import HFTokenizer
    from tests.fixtures.tokenizers import train_metaspace

    spec = json.loads((train_metaspace(tmp_path / "t") / "tokenizer.json").read_text())
    edit(spec)
    with pytest.raises(ValueError, match=match):
        HFTokenizer(spec)


# Byte-level BPE as Qwen2 / Qwen2.5 / Qwen3 (Qwen2's regex, an NFC normalizer) and Phi-4-mini (GPT-4o's o200k
# regex: case-insensitive contractions, \p{Lu}/\p{Ll}/\p{Lt}/\p{Lm}/\p{Lo}/\p{M} classes) write their tokenizer.json
BYTE_LEVEL_KINDS = ["qwen2", "phi4-mini"]
CHAT = ["<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nnaïve 中文<|im_end|>\n",
        "<|system|>sys<|end|><|user|>Hi 'S 'LL I'M<|end|><|assistant|>", "<|endoftext|>", "x<|tool|>y<|end|>",
        "HELLO'S World'Ve ǅungla'S ÀÉÎ'd ΣΑΣ's ﬁx'Ll", "don'T WE'LL i'M", "a/b\r\n/c", "1234567 12 123",
        "\u0915\u093f\u0930\u094d Ǆ ǅ ǆ ᾈ ʰ ǂ"]


def byte_level(kind: str, folder):
    from tests.fixtures import tokenizers as fx

    return fx.qwen2_tokenizer(folder) if kind == "qwen2" else fx.phi4_mini_tokenizer(folder)


@pytest.fixture(scope="module", params=BYTE_LEVEL_KINDS)
def byte_level_json(request, tmp_path_factory):
    folder = byte_level(request.param, tmp_path_factory.mktemp(request.param) / "tok")
    return request.param, folder, tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))


def test_qwen2_and_phi4_mini_tokenizer_json_match_hugging_face(byte_level_json):
    """50k+ tokens of mixed-script text, text that NFC changes (decomposed
    accents, Hangul jamo, marks out of canonical order) and chat markup, id
    for id with `tokenizers`, and decoding as it decodes."""
    from tests.fixtures.tokenizers import mixed_script, not_nfc

    kind, folder, hf = byte_level_json
    ours = load_tokenizer(folder)
    assert isinstance(ours, BPETokenizer)
    assert (ours.normalizer_spec == {"type": "NFC"}) == (kind == "qwen2")
    assert not ours.add_bos  # neither starts a sequence with a BOS
    n = 0
    for t in mixed_script(1800, seed=5) + not_nfc(300, seed=4) + corpus(200, seed=3) + CHAT + ODD:
        want = hf.encode(t).ids
        n += len(want)
        assert ours.encode(t, add_bos=ours.add_bos) == want, repr(t)
        assert ours.decode(want) == hf.decode(want, skip_special_tokens=False), repr(t)
    assert n > 50_000


def test_qwen2_nfc_changes_the_ids_of_text_not_in_nfc(tmp_path):
    """Without its NFC normalizer the Qwen2 vocabulary tokenizes decomposed
    text differently: the normalizer is what makes the ids agree."""
    import json

    from pocketlm.tokenizer import BPETokenizer
    from tests.fixtures.tokenizers import NOT_NFC, qwen2_tokenizer

    folder = qwen2_tokenizer(tmp_path / "q")
    spec = json.loads((folder / "tokenizer.json").read_text())
    ours = load_tokenizer(folder)
    spec["normalizer"] = None
    plain = BPETokenizer(spec)
    changed = [t for t in NOT_NFC if ours.encode(t) != plain.encode(t)]
    assert len(changed) > len(NOT_NFC) // 2


def test_merges_are_parsed_on_first_encode_and_other_layouts_whole():
    """parse_tokenizer_json leaves model.merges as text only where `tokenizers`
    writes it (the file's last value); a file laid out otherwise, or whose
    "merges" text sits elsewhere, is parsed whole, and both give the same
    tokenizer."""
    import json

    from pocketlm.tokenizer import HFTokenizer, LazyMerges, parse_tokenizer_json

    spec = {"added_tokens": [{"id": 0, "content": "<unk>", "special": True}], "normalizer": None,
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"},
            "decoder": None, "model": {"type": "BPE", "unk_token": "<unk>",
                                       "vocab": {"<unk>": 0, "\u2581": 1, "a": 2, "b": 3, "ab": 4, "\u2581ab": 5,
                                                 '"merges": [': 6},
                                       "merges": [["a", "b"], ["\u2581", "ab"]]}}
    text = json.dumps(spec, indent=2)
    lazy = parse_tokenizer_json(text)
    assert isinstance(lazy["model"]["merges"], LazyMerges)
    assert lazy["model"]["vocab"] == spec["model"]["vocab"]
    moved = dict(spec, model=dict(spec["model"], merges=spec["model"]["merges"], dropout=None))  # merges not last
    other = [json.dumps(moved), json.dumps({"model": spec["model"], "decoder": None}), json.dumps(spec)[:-1] + ', "x": []}']
    assert parse_tokenizer_json(other[0]) == moved and parse_tokenizer_json(other[1])["model"] == spec["model"]
    assert parse_tokenizer_json(other[2])["x"] == []
    want = HFTokenizer(spec).encode("ab abab b")
    assert HFTokenizer(lazy).encode("ab abab b") == want == [5, 5, 4, 1, 3]
    bad = parse_tokenizer_json(json.dumps(dict(spec, model=dict(spec["model"], merges=[["a", "zz"]]))))
    tok = HFTokenizer(bad)  # loads: the merges are read on first encode, which names the bad one
    with pytest.raises(ValueError, match="'a' 'zz' names a token outside the vocabulary"):
        tok.encode("ab")


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
def test_converter_reads_a_vocab_model_file_that_is_a_tokenizer_json(tmp_path, kind):
    """vocab_model_file naming a tokenizer.json (any file name) is recognised
    by its content and read as load_tokenizer reads it, with the
    tokenizer_config.json beside it, not as a SentencePiece model."""
    import json
    import shutil

    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from pocketlm.model.gguf_file import read_gguf
    from tests.fixtures import checkpoints
    from tests.fixtures.tokenizers import mixed_script, not_nfc, qwen2_tokenizer, transformers_sentencepiece

    tok_dir = tmp_path / "tok"
    if kind == "qwen2":
        qwen2_tokenizer(tok_dir)
        folder = checkpoints.qwen2(tmp_path / "ckpt", vocab_size=3003)
    else:
        transformers_sentencepiece(tok_dir, "LlamaTokenizer")
        folder = checkpoints.llama(tmp_path / "ckpt", vocab_size=500)
    shutil.move(tok_dir / "tokenizer.json", tok_dir / "vocab-for-phone.json")
    hf = tokenizers.Tokenizer.from_file(str(tok_dir / "vocab-for-phone.json"))
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"),
                                               vocab_model_file=str(tok_dir / "vocab-for-phone.json")))
    _, _, tok, _ = read_gguf(path)
    shutil.move(tok_dir / "vocab-for-phone.json", tok_dir / "tokenizer.json")
    ref = load_tokenizer(tok_dir, config=json.loads((folder / "config.json").read_text()))  # the checkpoint's ids
    assert (tok.bos_id, tok.eos_ids, tok.add_bos, tok.vocab_size) == (ref.bos_id, ref.eos_ids, ref.add_bos,
                                                                       ref.vocab_size)
    for t in mixed_script(200, seed=9) + not_nfc(50, seed=2) + CHAT:
        assert tok.encode(t) == hf.encode(t, add_special_tokens=False).ids, repr(t)


def test_is_tokenizer_json_tells_json_from_a_sentencepiece_model(tmp_path):
    from pocketlm.tokenizer import is_tokenizer_json
    from tests.fixtures.tokenizers import train_sentencepiece

    sp = train_sentencepiece(tmp_path / "sp") / "tokenizer.model"
    (tmp_path / "a.json").write_bytes(b"\xef\xbb\xbf \n {\"model\": {}}")
    assert is_tokenizer_json(tmp_path / "a.json") and not is_tokenizer_json(sp)


def test_a_normalized_added_token_beside_a_byte_level_normalizer_is_refused_by_name(tmp_path):
    """`tokenizers` matches a normalized added token after Qwen2's NFC; BPETokenizer
    matches added tokens in the text as given, so it refuses the pair rather
    than split "cafe\\u0301" differently. Without a normalizer the flag changes
    nothing and loads."""
    import json

    from tests.fixtures.tokenizers import qwen2_tokenizer

    spec = json.loads((qwen2_tokenizer(tmp_path / "q") / "tokenizer.json").read_text())
    spec["added_tokens"].append({"id": 3003, "content": "café", "special": False, "normalized": True})
    with pytest.raises(ValueError, match="added token 'café' is normalized"):
        BPETokenizer(spec)
    spec["normalizer"] = None
    assert BPETokenizer(spec).encode("a café")[-1] == 3003
