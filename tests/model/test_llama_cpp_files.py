"""GGUF files written by llama.cpp's own converter (tests/fixtures/llama_cpp,
made by tools/make_llama_cpp_fixtures.py) load as they are, for every
architecture llama.cpp and pocketlm share, and run as the checkpoint they
were converted from: the same logits as that checkpoint read directly with
F16 weights (what the files hold), the same greedy tokens, the same
tokenization."""

import numpy as np
import pytest

from pocketlm.model.forward import KVCache, Model
from pocketlm.model.loader import load_model
from tests.fixtures.llama_cpp import SOURCES, fixture_path, source_checkpoint
from tests.fixtures.tokenizers import corpus

PROMPT = [1, 17, 200, 33, 5, 99, 250, 7, 64, 128, 3, 77, 12, 190, 45, 8]


def greedy(model, n=24):
    cache = KVCache(model.cfg, len(PROMPT) + n)
    logits, out = model.forward(PROMPT, cache), []
    for _ in range(n):
        out.append(int(np.argmax(logits[-1])))
        logits = model.forward([out[-1]], cache)
    return out


@pytest.fixture(scope="module", params=list(SOURCES))
def pair(request, tmp_path_factory):
    name = request.param
    folder = source_checkpoint(name, tmp_path_factory.mktemp(name))
    return name, load_model(fixture_path(name)), folder


def test_file_runs_as_its_source_checkpoint(pair):
    name, (model, _, _), folder = pair
    ref = Model.from_pretrained(folder, "F16")
    assert model.cfg.n_layers == ref.cfg.n_layers and model.cfg.vocab_size == ref.cfg.vocab_size
    got = model.forward(PROMPT, KVCache(model.cfg, len(PROMPT)))
    want = ref.forward(PROMPT, KVCache(ref.cfg, len(PROMPT)))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4, err_msg=name)
    assert greedy(model) == greedy(ref)


def test_file_tokenizes_as_its_source_tokenizer(pair):
    name, (_, tok, _), folder = pair
    src = load_model(folder)[1]
    lines = corpus(200, seed=5)
    assert [tok.encode(s) for s in lines] == [src.encode(s) for s in lines], name
    ids = src.encode("the model runs on a phone")
    assert tok.decode(ids) == src.decode(ids)


def test_fused_qkv_is_split_into_views_not_copies():
    model, _, _ = load_model(fixture_path("gpt2"))
    q, k, v = (model.w[f"blk.0.attn_{p}.weight"].data for p in "qkv")
    assert q.shape == k.shape == v.shape == (64, 64)
    # three adjacent row ranges of the one memory-mapped attn_qkv tensor
    start = [a.__array_interface__["data"][0] for a in (q, k, v)]
    assert start[1] == start[0] + q.nbytes and start[2] == start[1] + k.nbytes
    assert not (q.flags.owndata or k.flags.owndata or v.flags.owndata)
    biases = [model.w[f"blk.0.attn_{p}.bias"] for p in "qkv"]
    assert all(isinstance(b, np.ndarray) and b.shape == (64,) for b in biases)


def test_unknown_architecture_is_named(tmp_path):
    import gguf

    path = tmp_path / "bert.gguf"
    w = gguf.GGUFWriter(str(path), "bert")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match="'bert' is not supported; supported: llama, gemma"):
        load_model(path)
