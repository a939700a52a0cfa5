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
