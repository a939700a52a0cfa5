"""config.json in both forms (transformers 5's rope_parameters and the
legacy top-level keys), llama3 rope scaling, the same settings through GGUF
keys, and refusal by name of every rope type or key that is not
implemented."""

import json
import os
import stat

import gguf
import numpy as np
import pytest

from pocketlm.genai.bundler import BundleConfig, create_bundle
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
from pocketlm.model.config import config_from_dict, load_config
from pocketlm.model.forward import KVCache, Model
from pocketlm.model.loader import load_model
from tests.fixtures import checkpoints
from tests.fixtures.llama_cpp import without_pocketlm_keys
from tests.fixtures.tokenizers import train_byte_level_bpe, train_sentencepiece

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 32}
BUILDS = {
    "llama-llama3": lambda f: checkpoints.llama(f, rope_theta=500000.0, rope_scaling=LLAMA3),
    "llama-linear": lambda f: checkpoints.llama(f, rope_theta=20000.0, rope_scaling={"type": "linear", "factor": 2.0}),
    "phi-partial": lambda f: checkpoints.phi(f, partial_rotary_factor=0.5, rope_theta=30000.0),
    "stablelm-partial": lambda f: checkpoints.stablelm(f, partial_rotary_factor=0.25),
    "gemma2": checkpoints.gemma2,
    "falcon-7b": lambda f: checkpoints.falcon(f, variant="7b", rope_theta=40000.0),
}


@pytest.mark.parametrize("name", list(BUILDS))
def test_transformers5_and_legacy_configs_agree(tmp_path, name):
    folder = BUILDS[name](tmp_path / "new")
    saved = json.loads((folder / "config.json").read_text())
    assert "rope_parameters" in saved and "rope_theta" not in saved  # what transformers 5 writes
    new = load_config(folder)
    old = load_config(checkpoints.legacy_config(folder))
    assert new == old
    assert new.rope_theta == saved["rope_parameters"]["rope_theta"]


def test_rope_settings_reach_the_model_config(tmp_path):
    cfg = load_config(BUILDS["phi-partial"](tmp_path / "phi"))
    assert (cfg.rot_dim, cfg.rope_theta) == (8, 30000.0)  # 0.5 of head_dim 16
    cfg = load_config(BUILDS["llama-linear"](tmp_path / "lin"))
    assert cfg.rope_freq_scale == 0.5 and cfg.rope_theta == 20000.0


def test_llama3_factors_match_transformers():
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    c = dict(model_type="llama", vocab_size=8, hidden_size=256, num_hidden_layers=1, num_attention_heads=2,
             intermediate_size=8, rope_theta=500000.0, max_position_embeddings=131072,
             rope_scaling={**LLAMA3, "original_max_position_embeddings": 8192})
    ours = config_from_dict(c)
    hd = 128
    inv_freq, _ = ROPE_INIT_FUNCTIONS["llama3"](LlamaConfig(**{k: v for k, v in c.items() if k != "model_type"}), None)
    plain = 500000.0 ** (-np.arange(0, hd, 2) / hd)
    np.testing.assert_allclose(plain / np.array(ours.rope_freq_factors), inv_freq.to(torch.float64).numpy(),
                               rtol=1e-6)
    assert len(set(ours.rope_freq_factors)) > 2  # high, low and the interpolated band between


BASE = dict(model_type="llama", vocab_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=8)


@pytest.mark.parametrize("extra,match", [
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}}, "unsupported rope type 'yarn'"),
    ({"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "unsupported rope type 'dynamic'"),
    ({"rope_scaling": {"rope_type": "longrope", "short_factor": [1], "long_factor": [1]}}, "'longrope'"),
    ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "attention_factor": 0.5}}, "attention_factor"),
    ({"rope_parameters": {"rope_type": "llama3", "factor": 8.0}}, "needs high_freq_factor"),
    ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}},
     "partial_rotary_factor 0.5 is not supported for model_type 'llama'"),
    ({"rope_parameters": {"full_attention": {"rope_theta": 1e6}, "sliding_attention": {"rope_theta": 1e4}}},
     "differ by layer type"),
    ({"use_bidirectional_attention": True}, "use_bidirectional_attention"),
])
def test_unimplemented_rope_and_keys_are_refused_by_name(extra, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict({**BASE, **extra})


@pytest.mark.parametrize("c,match", [
    (dict(model_type="gpt2", vocab_size=8, n_embd=64, n_layer=1, n_head=4, scale_attn_by_inverse_layer_idx=True),
     "scale_attn_by_inverse_layer_idx"),
    (dict(model_type="phi", vocab_size=8, hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
          intermediate_size=8, qk_layernorm=True), "qk_layernorm"),
])
def test_other_maths_changing_keys_are_refused(c, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict(c)


def test_llama3_model_file_carries_rope_freqs_as_llama_cpp_does(tmp_path):
    folder = BUILDS["llama-llama3"](tmp_path / "ckpt")
    train_byte_level_bpe(folder, vocab_size=256)
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"),
                                               is_quantized=False))
    r = gguf.GGUFReader(str(path))
    ff = next(t for t in r.tensors if t.name == "rope_freqs.weight")
    want = load_config(folder).rope_freq_factors
    np.testing.assert_allclose(np.asarray(ff.data), want, rtol=1e-6)
    direct = Model.from_pretrained(folder)
    prompt = list(range(3, 40))
    ref = direct.forward(prompt, KVCache(direct.cfg, 64))
    # a file with llama.cpp's keys only: the factors come from the tensor
    plain, _, _ = load_model(without_pocketlm_keys(path, tmp_path / "plain.gguf"))
    np.testing.assert_allclose(plain.cfg.rope_freq_factors, want, rtol=1e-6)
    np.testing.assert_allclose(plain.forward(prompt, KVCache(plain.cfg, 64)), ref, atol=1e-4, rtol=1e-4)
    yarn = tmp_path / "yarn.gguf"
    without_pocketlm_keys(path, yarn, **{"llama.rope.scaling.type": "yarn"})
    with pytest.raises(ValueError, match=r"llama.rope.scaling.type 'yarn' is not supported"):
        load_model(yarn)


def test_output_files_get_the_umask_mode(tmp_path):
    folder = checkpoints.gemma(tmp_path / "ckpt", vocab_size=700)
    train_sentencepiece(folder, vocab_size=700)
    old = os.umask(0o022)
    try:
        path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o")))
        task = create_bundle(BundleConfig(str(path), str(folder / "tokenizer.model"), "<s>", ["</s>"],
                                          str(tmp_path / "m.task")))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644 and stat.S_IMODE(task.stat().st_mode) == 0o644
        os.umask(0o077)
        private = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "p")))
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(old)
