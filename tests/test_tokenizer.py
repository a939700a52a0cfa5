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
