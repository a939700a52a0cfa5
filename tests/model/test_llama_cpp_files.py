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


def test_gemma3_file_reads_llama_cpps_window_pattern_and_local_base():
    model, _, _ = load_model(fixture_path("gemma3"))
    c = model.cfg
    # no sliding_window_pattern key: llama.cpp's 6 (five sliding layers, then a full one)
    assert (c.sliding_window, c.sliding_window_layers) == (8, (0, 1, 2, 3, 4))
    assert (c.rope_local_theta, c.rope_theta, c.rope_freq_scale) == (10000.0, 1e6, 0.25)
    assert c.qk_norm and c.post_norms and c.norm_w_offset == 0.0 and c.query_scale == 16 ** -0.5


def test_phi3_file_reads_longrope_and_splits_the_fused_mlp_into_views(tmp_path):
    from tests.fixtures import checkpoints

    model, _, _ = load_model(fixture_path("phi3"))
    c = model.cfg
    np.testing.assert_allclose(c.rope_freq_factors, checkpoints.PHI3_LONGROPE["short_factor"], rtol=1e-7)  # F32
    np.testing.assert_allclose(c.rope_freq_factors_long, checkpoints.PHI3_LONGROPE["long_factor"], rtol=1e-7)
    assert (c.rope_long_after, c.rot_dim, c.sliding_window) == (16, 12, 0)
    assert c.rope_attn_factor == pytest.approx(1.5 ** 0.5, rel=1e-6)
    assert "rope_factors_long.weight" not in model.w
    gate, up = model.w["blk.0.ffn_gate.weight"].data, model.w["blk.0.ffn_up.weight"].data
    assert gate.shape == up.shape == (128, 64) and not (gate.flags.owndata or up.flags.owndata)
    assert up.__array_interface__["data"][0] == gate.__array_interface__["data"][0] + gate.nbytes
    # a prompt past the original 16 positions rotates by the long factors, as its checkpoint does
    ref = Model.from_pretrained(source_checkpoint("phi3", tmp_path / "phi3"), "F16")
    long_prompt = PROMPT + PROMPT[:10]
    np.testing.assert_allclose(model.forward(long_prompt, KVCache(c, 32)), ref.forward(long_prompt, KVCache(ref.cfg, 32)),
                               atol=1e-4, rtol=1e-4)
