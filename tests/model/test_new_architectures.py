"""Gemma 3, Qwen2, Qwen3 and Phi-3 against Hugging Face transformers on tiny
checkpoints whose configs set what changes the maths (checkpoints.py): F32
logits to 1e-4, 32 greedy tokens identical, token-by-token decoding equal to
transformers' own incremental decoding (and, where no longrope factor switch
lies between them, to one prefill), a prompt longer than the sliding window
batched in any way, on every kernel backend; and the config keys these
architectures do not implement refused by name."""

import json

import numpy as np
import pytest

from pocketlm.model.config import config_from_dict, load_config
from pocketlm.model.forward import KVCache, Model, kv_lengths
from tests.fixtures import checkpoints

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ARCHS = {
    "gemma3": checkpoints.gemma3,
    "gemma3-final-softcap": lambda f: checkpoints.gemma3(f, seed=3, final_logit_softcapping=30.0),
    "qwen2": checkpoints.qwen2,
    "qwen2-tied-sliding": lambda f: checkpoints.qwen2(f, seed=4, tie_word_embeddings=True, use_sliding_window=True,
                                                      sliding_window=6, max_window_layers=1),
    "qwen3": checkpoints.qwen3,
    "qwen3-untied-bias": lambda f: checkpoints.qwen3(f, seed=5, tie_word_embeddings=False, attention_bias=True),
    "phi3-longrope": checkpoints.phi3,
    "phi3-default-rope": lambda f: checkpoints.phi3(f, seed=6, sliding_window=None, rope_parameters={
        "rope_type": "default", "rope_theta": 20000.0, "partial_rotary_factor": 0.75}),
}
# 40 tokens: five times Gemma 3's window of 8, past Phi-3's original 16 positions
PROMPT = [1, 17, 200, 33, 5, 99, 250, 7, 64, 128, 3, 77, 12, 190, 45, 8, 230, 61, 150, 9,
          40, 41, 2, 180, 18, 211, 6, 91, 120, 33, 47, 240, 10, 11, 99, 5, 71, 160, 27, 3]
SHORT = PROMPT[:12]  # within Phi-3's original 16 positions: its short factors


@pytest.fixture(scope="module", params=list(ARCHS))
def ckpt(request, tmp_path_factory):
    folder = ARCHS[request.param](tmp_path_factory.mktemp(request.param))
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    return request.param, folder, hf, Model.from_pretrained(folder)


def hf_logits(hf, tokens):
    with torch.no_grad():
        return hf(torch.tensor([tokens])).logits[0].numpy()


def hf_steps(hf, tokens):
    """transformers' own incremental decoding: one token a call over its cache."""
    cache, out = transformers.DynamicCache(config=hf.config), []
    with torch.no_grad():
        for t in tokens:
            out.append(hf(torch.tensor([[t]]), cache=cache, use_cache=True).logits[0, -1].numpy())
    return np.stack(out)


def greedy(model, prompt, n):
    cache = KVCache(model.cfg, len(prompt) + n)
    logits = model.forward(prompt, cache)
    out = []
    for _ in range(n):
        out.append(int(np.argmax(logits[-1])))
        logits = model.forward([out[-1]], cache)
    return out


def hf_greedy(hf, prompt, n):
    toks = list(prompt)
    for _ in range(n):
        toks.append(int(np.argmax(hf_logits(hf, toks)[-1])))
    return toks[len(prompt):]


@pytest.mark.parametrize("prompt", [PROMPT, SHORT], ids=["long", "short"])
def test_prefill_logits_match_transformers(ckpt, prompt):
    _, _, hf, model = ckpt
    ours = model.forward(prompt, KVCache(model.cfg, 64))
    np.testing.assert_allclose(ours, hf_logits(hf, prompt), atol=1e-4, rtol=1e-4)


def test_decode_steps_match_transformers_incremental_decoding(ckpt):
    name, _, hf, model = ckpt
    cache = KVCache(model.cfg, 64)
    steps = np.concatenate([model.forward([t], cache) for t in PROMPT])
    np.testing.assert_allclose(steps, hf_steps(hf, PROMPT), atol=1e-4, rtol=1e-4)
    if not model.cfg.rope_freq_factors_long:  # one prefill rotates every position alike: the same logits
        np.testing.assert_allclose(steps, hf_logits(hf, PROMPT), atol=1e-4, rtol=1e-4)


def test_greedy_tokens_match_transformers(ckpt):
    _, _, hf, model = ckpt
    assert greedy(model, PROMPT[:20], 32) == hf_greedy(hf, PROMPT[:20], 32)


@pytest.mark.parametrize("batch", [3, 8, 13])
def test_a_prompt_prefilled_in_batches_gives_one_prefills_logits(ckpt, batch):
    """Batches shorter and longer than the sliding layers' ring: the ring's
    past plus each batch's own keys, exact; pos_end keeps longrope's choice
    the whole prompt's."""
    _, _, _, model = ckpt
    whole = model.forward(PROMPT, KVCache(model.cfg, 64))
    cache = KVCache(model.cfg, 64)
    parts = [model.forward(PROMPT[i:i + batch], cache, pos_end=len(PROMPT)) for i in range(0, len(PROMPT), batch)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5, rtol=1e-5)


def test_sliding_layers_keep_a_ring_of_their_window(ckpt):
    _, _, _, model = ckpt
    c = model.cfg
    lengths = kv_lengths(c, 4096)
    for i, n in enumerate(lengths):
        assert n == (c.sliding_window if c.sliding_window and i in c.sliding_window_layers else 4096)
    cache = KVCache(c, 4096)
    assert [k.shape[0] for k in cache.k] == list(lengths)


@pytest.mark.parametrize("backend_name", ["numba", "reference"])
def test_every_backend_gives_the_same_logits(ckpt, backend_name):
    from pocketlm import kernels

    _, folder, _, native = ckpt
    other = Model.from_pretrained(folder, backend=kernels.get_backend(backend_name))
    np.testing.assert_allclose(other.forward(PROMPT, KVCache(other.cfg, 64)),
                               native.forward(PROMPT, KVCache(native.cfg, 64)), atol=1e-4, rtol=1e-4)


def test_f16_cache_ring_matches_the_full_cache(ckpt):
    """The ring rounds a batch's own keys as the cache stores them: an F16
    ring gives what an F16 cache of every position gives."""
    _, _, _, model = ckpt
    if not model.cfg.sliding_window:
        pytest.skip("no sliding-window layers")
    ring = KVCache(model.cfg, 64, "F16")
    full = KVCache(model.cfg, 64, "F16")
    full.lengths = (64,) * model.cfg.n_layers  # every layer kept whole
    full.k = [np.zeros((64, *k.shape[1:]), np.float16) for k in full.k]
    full.v = [np.zeros((64, *v.shape[1:]), np.float16) for v in full.v]
    a = np.concatenate([model.forward(PROMPT[i:i + 13], ring, pos_end=40) for i in range(0, 40, 13)])
    b = np.concatenate([model.forward(PROMPT[i:i + 13], full, pos_end=40) for i in range(0, 40, 13)])
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


# ---- configs ------------------------------------------------------------------------------


def test_longrope_factors_and_attention_factor_are_transformers(tmp_path):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    folder = checkpoints.phi3(tmp_path / "phi3")
    cfg = load_config(folder)
    hf_cfg = transformers.AutoConfig.from_pretrained(folder)
    short, attn = ROPE_INIT_FUNCTIONS["longrope"](hf_cfg, None)
    long_, _ = ROPE_INIT_FUNCTIONS["longrope"](hf_cfg, None, seq_len=17)
    inv = 10000.0 ** (-np.arange(0, cfg.rot_dim, 2) / cfg.rot_dim)
    np.testing.assert_allclose(inv / np.asarray(cfg.rope_freq_factors), short.numpy(), rtol=1e-6)
    np.testing.assert_allclose(inv / np.asarray(cfg.rope_freq_factors_long), long_.numpy(), rtol=1e-6)
    assert cfg.rope_attn_factor == pytest.approx(attn) and cfg.rope_long_after == 16 and cfg.rot_dim == 12
    # an explicit attention_factor wins, as in transformers
    c = json.loads((folder / "config.json").read_text())
    c["rope_parameters"]["attention_factor"] = 1.5
    assert config_from_dict(c).rope_attn_factor == 1.5


def test_gemma3_older_config_keys_read_as_the_new_ones(tmp_path):
    folder = checkpoints.gemma3(tmp_path / "g")
    c = json.loads((folder / "config.json").read_text())
    new = config_from_dict(c)
    old = dict(c)
    rp = old.pop("rope_parameters")
    old.update(rope_theta=rp["full_attention"]["rope_theta"], rope_local_base_freq=rp["sliding_attention"]["rope_theta"],
               rope_scaling={"rope_type": "linear", "factor": rp["full_attention"]["factor"]})
    assert config_from_dict(old) == new
    assert (new.rope_theta, new.rope_freq_scale, new.rope_local_theta) == (1e6, 0.25, 1e4)
    assert new.query_scale == 24 ** -0.5 and new.sliding_window_layers == (0, 1, 3, 4)
    # no layer_types: transformers' pattern of 6 (five sliding layers, then a full one)
    old.pop("layer_types")
    assert config_from_dict({**old, "num_hidden_layers": 7}).sliding_window_layers == (0, 1, 2, 3, 4, 6)
    assert config_from_dict({**old, "sliding_window_pattern": 2}).sliding_window_layers == (0, 2, 4)


def test_a_multimodal_gemma3_checkpoint_runs_its_language_model(tmp_path):
    """Gemma3ForConditionalGeneration as transformers saves it: the text_config and the language
    model's tensors run to transformers' text-only logits; the vision tower is not loaded."""
    from pocketlm.model.checkpoint import canonical_tensors, read_checkpoint_tensors

    folder = checkpoints.gemma3_multimodal(tmp_path / "g")
    cfg = load_config(folder)
    assert cfg == load_config(tmp_path / "g" / "text")
    hf = read_checkpoint_tensors(folder)
    assert any("vision_tower" in n for n in hf)
    canon = canonical_tensors(hf, cfg)
    assert not any("vision" in n or "projector" in n for n in canon)
    # the other naming checkpoints carry: model.language_model.*
    other = {n.replace("language_model.model.", "model.language_model.", 1): t for n, t in hf.items()}
    assert set(canonical_tensors(other, cfg)) == set(canon)
    model = Model.from_pretrained(folder)
    mm = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    assert type(mm).__name__ == "Gemma3ForConditionalGeneration"
    np.testing.assert_allclose(model.forward(PROMPT, KVCache(cfg, 64)), hf_logits(mm, PROMPT), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model_type,change,named", [
    ("gemma3_text", {"use_bidirectional_attention": True}, "use_bidirectional_attention"),
    ("gemma3_text", {"attn_logit_softcapping": 50.0}, "attn_logit_softcapping"),
    ("gemma3_text", {"layer_types": ["chunked_attention"] * 6}, "chunked_attention"),
    ("gemma3_text", {"rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 2.0}}}, "yarn"),
    ("gemma3_text", {"rope_parameters": {"sliding_attention": {"rope_type": "llama3", "factor": 8.0,
                                                               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                               "original_max_position_embeddings": 8}}},
     "sliding-attention"),
    ("gemma3_text", {"rope_parameters": {"moe_attention": {"rope_type": "default"}}}, "moe_attention"),
    ("gemma3_text", {"sliding_window": None}, "sliding_window"),
    ("qwen2", {"use_sliding_window": True, "sliding_window": 4, "layer_types": ["hybrid", "full_attention"]},
     "hybrid"),
    ("qwen2", {"rope_parameters": {"rope_type": "longrope", "short_factor": [1.0] * 8, "long_factor": [1.0] * 8}},
     "longrope"),
    ("qwen3", {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0}}, "dynamic"),
    ("phi3", {"rope_parameters": {"rope_type": "linear", "factor": 2.0}}, "linear"),
    ("phi3", {"rope_parameters": {**checkpoints.PHI3_LONGROPE, "short_factor": [1.0] * 5}}, "short_factor"),
    ("phi3", {"rope_parameters": {**checkpoints.PHI3_LONGROPE, "mscale": 2.0}}, "mscale"),
])
def test_what_these_architectures_do_not_implement_is_refused_by_name(model_type, change, named):
    base = {"gemma3_text": dict(model_type="gemma3_text", head_dim=16, sliding_window=8, layer_types=None),
            "qwen2": dict(model_type="qwen2"), "qwen3": dict(model_type="qwen3", head_dim=24),
            "phi3": dict(model_type="phi3", original_max_position_embeddings=16,
                         rope_parameters=dict(checkpoints.PHI3_LONGROPE))}[model_type]
    c = {**checkpoints.TINY, "num_hidden_layers": 6 if model_type.startswith("gemma3") else 2, **base}
    c = {k: v for k, v in c.items() if v is not None}
    config_from_dict(c)  # the base config itself is accepted
    with pytest.raises(ValueError, match=named):
        config_from_dict({**c, **change})


def test_qwen_windows_follow_use_sliding_window():
    c = {**checkpoints.TINY, "model_type": "qwen2", "num_hidden_layers": 4, "sliding_window": 4,
         "max_window_layers": 2}
    assert config_from_dict(c).sliding_window == 0  # use_sliding_window false: none, as in transformers
    on = config_from_dict({**c, "use_sliding_window": True})
    assert (on.sliding_window, on.sliding_window_layers) == (4, (2, 3))


def test_a_copied_cache_continues_as_the_original(ckpt):
    """What a forked session does: the copy, rings included, decodes as the original does."""
    _, _, _, model = ckpt
    a = KVCache(model.cfg, 64)
    model.forward(PROMPT[:30], a)
    b = KVCache(model.cfg, 64)
    a.copy_into(b)
    assert b.n_past == 30
    np.testing.assert_array_equal(model.forward(PROMPT[30:], b), model.forward(PROMPT[30:], a))


def test_gemma3_device_memory_counts_the_window_for_local_layers(tmp_path):
    """At maxTokens 4096 the local layers hold their window, not 4096 positions: Gemma 3 1B's shape (26
    layers, one KV head of 256, window 512, 22 local layers) needs 28 MB of F16 cache, not 109 MB."""
    from pocketlm.device import memory_needed
    from pocketlm.model.info import kv_bytes_per_token, kv_cache_bytes

    one_b = config_from_dict(dict(model_type="gemma3_text", vocab_size=262144, hidden_size=1152,
                                  intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
                                  num_key_value_heads=1, head_dim=256, sliding_window=512, query_pre_attn_scalar=256,
                                  rope_theta=1000000.0, rope_local_base_freq=10000.0, sliding_window_pattern=6))
    assert len(one_b.sliding_window_layers) == 22
    assert kv_cache_bytes(one_b, 4096, "F16") == 2 * 256 * 2 * (22 * 512 + 4 * 4096)
    assert kv_cache_bytes(one_b, 4096, "F16") < 0.3 * 4096 * kv_bytes_per_token(one_b, "F16")
    assert kv_cache_bytes(one_b, 256, "F16") == 256 * kv_bytes_per_token(one_b, "F16")  # inside the window: all
    model = Model.from_pretrained(checkpoints.gemma3(tmp_path / "g"))
    per_position = 2 * model.cfg.n_kv_heads * model.cfg.head_dim * 4
    assert memory_needed(model, 4096).kv_cache == per_position * (4 * 8 + 2 * 4096)


LORA_TARGETS = {"gemma3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]}


@pytest.mark.parametrize("arch", list(LORA_TARGETS))
def test_lora_adapters_run_as_peft_runs_them_from_the_checkpoint_and_the_converted_files(tmp_path, arch):
    """A PEFT adapter on every projection (Phi-3's fused qkv_proj and gate_up_proj split onto q/k/v and
    gate/up) gives peft's logits over the checkpoint, and over the converted model with the GGUF adapter
    the converter writes beside it (fused again where llama.cpp fuses)."""
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from pocketlm.model.loader import load_model
    from pocketlm.model.lora import load_adapter
    from tests.fixtures.lora import peft_adapter, peft_model
    from tests.fixtures.tokenizers import train_sentencepiece

    folder = getattr(checkpoints, arch)(tmp_path / "ckpt")
    train_sentencepiece(folder, vocab_size=700)
    adapter = peft_adapter(folder, tmp_path / "lora", seed=21, targets=LORA_TARGETS[arch])
    prompt = PROMPT[:20]
    with torch.no_grad():
        want = peft_model(folder, adapter)(torch.tensor([prompt])).logits[0].numpy()
    model = Model.from_pretrained(folder)
    lora = load_adapter(adapter, model.cfg)
    assert lora.targets == ["attn_k", "attn_output", "attn_q", "attn_v", "ffn_down", "ffn_gate", "ffn_up"]
    np.testing.assert_allclose(model.forward(prompt, KVCache(model.cfg, 32), lora=lora), want, atol=1e-4, rtol=1e-4)
    assert np.abs(model.forward(prompt, KVCache(model.cfg, 32)) - want).max() > 1e-2  # the adapter matters
    out = tmp_path / "out"
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "gpu", str(out), is_quantized=False,
                                               lora_ckpt=str(adapter), lora_rank=4))
    converted = load_model(path)[0]
    if arch == "phi3":  # laid out as llama.cpp's phi3 weights: attn_qkv and a [gate; up] ffn_up
        import gguf

        names = {t.name: tuple(int(d) for d in t.shape) for t in gguf.GGUFReader(str(out / "lora.tflite")).tensors}
        assert names["blk.0.attn_qkv.weight.lora_b"] == (4, 128) and names["blk.0.ffn_up.weight.lora_b"] == (4, 256)
        assert not any(".ffn_gate." in n or ".attn_q." in n for n in names)
    gguf_lora = load_adapter(out / "lora.tflite", converted.cfg)
    np.testing.assert_allclose(converted.forward(prompt, KVCache(converted.cfg, 32), lora=gguf_lora), want,
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("build", ["phi3", "qwen2", "qwen3"])
def test_legacy_configs_read_as_transformers5s(tmp_path, build):
    """Top-level rope_theta / partial_rotary_factor and a rope_scaling object (Phi-3.5's configs, with
    its older "su" name for longrope) give the same ModelConfig as transformers 5's rope_parameters."""
    folder = getattr(checkpoints, build)(tmp_path / build)
    new = load_config(folder)
    assert load_config(checkpoints.legacy_config(folder)) == new
    c = json.loads((folder / "config.json").read_text())
    if build == "phi3":
        c["rope_scaling"] = {**{k: v for k, v in c["rope_scaling"].items() if k != "rope_type"}, "type": "su"}
        assert config_from_dict(c) == new
