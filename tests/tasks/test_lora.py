"""LoRA adapters through the public API, on both engines (tasks/conftest.py
runs every test on each): greedy parity with transformers + peft for Llama,
Gemma, Gemma-2 and Phi-2 adapters on the attention and MLP projections,
from the PEFT folder, its safetensors file and the file pocketlm's
converter writes; sessions of one LlmInference with different adapters,
and sessions inheriting the LlmInference's loraPath; adapters on quantized
weights; device memory; and the refusals."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.errors import ModelFileError
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
from tests.fixtures import checkpoints
from tests.fixtures.tokenizers import train_byte_level_bpe

pytest.importorskip("peft")
lora_fx = pytest.importorskip("tests.fixtures.lora")

ARCHS = {"llama": checkpoints.llama, "gemma": checkpoints.gemma, "gemma2": checkpoints.gemma2,
         "phi": checkpoints.phi}
PROMPT = "the model runs on a phone"
MAX_TOKENS = 40


def _convert(folder: Path, out: Path, adapter: Path | None = None, **kw) -> Path:
    lora = dict(lora_ckpt=str(adapter / "adapter_model.safetensors"), lora_rank=4) if adapter else {}
    kw.setdefault("is_quantized", False)
    return convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(out), **lora, **kw))


@pytest.fixture(scope="module", params=list(ARCHS))
def case(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    folder = ARCHS[request.param](root / "ckpt")
    train_byte_level_bpe(folder, vocab_size=256)
    adapter = lora_fx.peft_adapter(folder, root / "adapter", seed=1)
    model = _convert(folder, root / "out", adapter)
    return SimpleNamespace(arch=request.param, folder=folder, adapter=adapter, model=model,
                           lora_file=root / "out" / "lora.tflite", ref=lora_fx.peft_model(folder, adapter))


def _llm(model, **opts) -> LlmInference:
    b = LlmInferenceOptions.builder().setModelPath(str(model)).setMaxTokens(MAX_TOKENS)
    for k, v in opts.items():
        getattr(b, "set" + k[0].upper() + k[1:])(v)
    return LlmInference.createFromOptions(None, b.build())


def _session(llm, lora=None) -> LlmInferenceSession:
    b = LlmInferenceSessionOptions.builder().setTopK(1)
    if lora is not None:
        b.setLoraPath(str(lora))
    return LlmInferenceSession.createFromOptions(llm, b.build())


def _greedy(session: LlmInferenceSession, prompt: str = PROMPT):
    """(prompt ids, generated ids) of one greedy response."""
    session.addQueryChunk(prompt)
    n0 = session.n_tokens
    session.generateResponse()
    s = session._session
    ids = list(s.tokens) + list(s.pending)
    return ids[:n0], ids[n0:]


def _check_against(ref, engine, prompt_ids, generated):
    want = lora_fx.greedy_ids(ref, prompt_ids, len(generated) + 1, engine.stop_ids)
    assert generated == want[:len(generated)]
    assert len(generated) > 3


@pytest.mark.parametrize("source", ["peft-folder", "peft-file", "converted"])
def test_greedy_matches_transformers_and_peft(case, source):
    lora = {"peft-folder": case.adapter, "peft-file": case.adapter / "adapter_model.safetensors",
            "converted": case.lora_file}[source]
    with _llm(case.model) as llm:
        prompt, adapted = _greedy(_session(llm, lora))
        _check_against(case.ref, llm.engine, prompt, adapted)


@pytest.mark.parametrize("source", ["peft-folder", "converted"])
def test_logits_match_transformers_and_peft(case, source, engine_kind):
    """The logits of a prompt and of decode steps after it, to 1e-4 of their
    range, and far from the base model's (greedy text alone is weak evidence
    where a tiny random model repeats one token)."""
    import torch

    from pocketlm.engine.native import NativeTokens
    from pocketlm.model.forward import KVCache

    lora = case.adapter if source == "peft-folder" else case.lora_file
    ids = [1, 17, 200, 33, 5, 99, 250, 7, 64, 128]
    with torch.no_grad():
        want = case.ref(torch.tensor([ids])).logits[0].numpy()
        with case.ref.disable_adapter():
            base = case.ref(torch.tensor([ids])).logits[0].numpy()
    with _llm(case.model) as llm:
        adapter = llm.engine.load_lora(lora)
        if engine_kind == "native":
            t = NativeTokens(llm.engine.native, 32, "F32", lora=adapter.native)
            got = np.concatenate([t.eval(ids[:6], all_logits=True), t.eval(ids[6:7])[None], t.eval(ids[7:], True)])
        else:
            m = llm.engine.model
            cache = KVCache(m.cfg, 32)
            got = np.concatenate([m.forward(ids[:6], cache, lora=adapter), m.forward(ids[6:7], cache, lora=adapter),
                                  m.forward(ids[7:], cache, lora=adapter)])
    span = np.ptp(want)
    np.testing.assert_allclose(got, want, atol=1e-4 * span, rtol=0)
    assert np.abs(base - want).max() > 0.05 * span  # the adapter matters


def test_a_checkpoint_folder_takes_the_converted_adapter(case):
    """The folder keeps Hugging Face's q/k layout; the converted adapter is in the
    model file's (Llama's rows permuted): it is moved back."""
    with _llm(case.folder) as llm:
        prompt, adapted = _greedy(_session(llm, case.lora_file))
        _check_against(case.ref, llm.engine, prompt, adapted)


@pytest.fixture(scope="module")
def llama_two(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    folder = checkpoints.llama(root / "ckpt", seed=3)
    train_byte_level_bpe(folder, vocab_size=256)
    a = lora_fx.peft_adapter(folder, root / "a", seed=5)
    b = lora_fx.peft_adapter(folder, root / "b", seed=6, r=8, alpha=4, use_rslora=True,
                             targets=["q_proj", "v_proj", "down_proj"])
    return SimpleNamespace(folder=folder, a=a, b=b, model=_convert(folder, root / "out"))


def test_sessions_of_one_llm_inference_run_different_adapters(llama_two):
    import torch
    import transformers

    t = llama_two
    base_ref = transformers.AutoModelForCausalLM.from_pretrained(t.folder, dtype=torch.float32).eval()
    with _llm(t.model) as llm:
        sa, sb, s0 = _session(llm, t.a), _session(llm, t.b), _session(llm)
        for s in (sa, sb, s0):
            s.addQueryChunk(PROMPT)
        n0 = sa.n_tokens
        out = {}
        for name, s in (("a", sa), ("base", s0), ("b", sb)):  # interleaved on the shared weights
            s.generateResponse()
            out[name] = (list(s._session.tokens) + list(s._session.pending))
        prompt = out["a"][:n0]
        _check_against(lora_fx.peft_model(t.folder, t.a), llm.engine, prompt, out["a"][n0:])
        _check_against(lora_fx.peft_model(t.folder, t.b), llm.engine, prompt, out["b"][n0:])
        _check_against(base_ref, llm.engine, prompt, out["base"][n0:])
        assert len({tuple(v) for v in out.values()}) == 3
        # a clone keeps its session's adapter
        sa2 = _session(llm, t.a)
        sa2.addQueryChunk(PROMPT)
        clone = sa2.cloneSession()
        assert clone.generateResponse() == sa2.generateResponse()


def test_sessions_inherit_the_llm_inference_adapter_unless_they_name_one(llama_two):
    """loraPath on LlmInferenceOptions: its own responses and every session that
    names no adapter run it; a session naming another adapter runs that one."""
    t = llama_two
    with _llm(t.model) as plain:
        _, base = _greedy(_session(plain))
        _, only_b = _greedy(_session(plain, t.b))
    with _llm(t.model, loraPath=str(t.a), topK=1) as llm:
        implicit = llm.generateResponse(PROMPT)
        inheriting = _session(llm)
        assert inheriting.getSessionOptions().loraPath() is None  # the options stay as given
        prompt, inherited = _greedy(inheriting)
        named = _session(llm, t.a)
        named.addQueryChunk(PROMPT)
        assert named.generateResponse() == implicit
        assert (list(named._session.tokens) + list(named._session.pending))[len(prompt):] == inherited
        _check_against(lora_fx.peft_model(t.folder, t.a), llm.engine, prompt, inherited)
        assert inherited != base
        _, other = _greedy(_session(llm, t.b))
        assert other == only_b != inherited
        again = _session(llm)
        again.addQueryChunk(PROMPT)
        clone = again.cloneSession()  # a clone keeps the inherited adapter
        assert clone.generateResponse() == again.generateResponse() == implicit


@pytest.mark.parametrize("bits", [8, 4, 16])
def test_adapters_on_quantized_weights_agree_between_engines(llama_two, tmp_path, monkeypatch, bits):
    """Unmerged LoRA on Q8_0 / Q4_0 / F16 base weights: the C and Python engines give the same text."""
    model = _convert(llama_two.folder, tmp_path, is_quantized=True, attention_quant_bits=bits,
                     feedforward_quant_bits=bits, embedding_quant_bits=bits)
    texts = {}
    for kind in ("native", "python"):
        monkeypatch.setenv("POCKETLM_ENGINE", kind)
        with _llm(model, loraPath=str(llama_two.a)) as llm:
            texts[kind] = llm.generateResponse(PROMPT)
    assert texts["native"] == texts["python"]


def test_adapter_memory_is_counted_on_the_device(llama_two):
    from pocketlm.device import context

    ctx = context("pixel_8")
    opts = LlmInferenceOptions.builder().setModelPath(str(llama_two.model)).setMaxTokens(MAX_TOKENS) \
        .setLoraPath(str(llama_two.a)).build()
    with LlmInference.createFromOptions(ctx, opts) as llm:
        held = ctx.memory.parts["LoRA adapter"]
        # rank 4 on every projection of 2 layers, F32: A [4, in] and B [out, 4] per weight
        c = llm.engine.model.cfg
        per_layer = sum(4 * (n + k) for n, k in [(c.q_dim, c.hidden_size), (c.kv_dim, c.hidden_size),
                                                 (c.kv_dim, c.hidden_size), (c.hidden_size, c.q_dim),
                                                 (c.intermediate_size, c.hidden_size),
                                                 (c.intermediate_size, c.hidden_size),
                                                 (c.hidden_size, c.intermediate_size)])
        assert held == 4 * c.n_layers * per_layer
        _session(llm, llama_two.a)  # the same adapter again: read once, counted once
        assert ctx.memory.parts["LoRA adapter"] == held
    assert ctx.memory.parts.get("LoRA adapter", 0) == 0


# ---- refusals ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other(tmp_path_factory, llama_two):
    root = tmp_path_factory.mktemp("other")
    wide = checkpoints.llama(root / "wide", intermediate_size=96)
    return SimpleNamespace(
        wide_adapter=lora_fx.peft_adapter(wide, root / "wide_adapter"),
        head_adapter=lora_fx.peft_adapter(llama_two.folder, root / "head", targets=["q_proj", "lm_head"]),
        dora_adapter=lora_fx.peft_adapter(llama_two.folder, root / "dora", use_dora=True),
    )


def test_an_adapter_for_another_base_names_the_tensor_and_both_shapes(llama_two, other):
    with _llm(llama_two.model) as llm:
        with pytest.raises(ModelFileError, match=r"layers.0.mlp.down_proj.lora_A.weight \(4, 96\) / .*lora_B.weight "
                                                 r"\(64, 4\) does not fit the base model's blk.0.ffn_down.weight of "
                                                 r"shape \(64, 128\)"):
            _session(llm, other.wide_adapter)


def test_unsupported_targets_and_settings_are_refused_by_name(llama_two, other):
    with _llm(llama_two.model) as llm:
        with pytest.raises(ModelFileError, match=r"target module lm_head .* is not supported"):
            _session(llm, other.head_adapter)
        with pytest.raises(ModelFileError, match=r"use_dora=True \(DoRA"):
            _session(llm, other.dora_adapter)
        with pytest.raises(ModelFileError, match="not a LoRA adapter \\(it is a model file\\)"):
            _session(llm, llama_two.model)
        with pytest.raises(ModelFileError, match="the adapter is for a 'gemma' model, the base model is 'llama'"):
            _session(llm, lora_fx.lora_fixture_path("gemma"))


def test_ranks_are_checked(llama_two, tmp_path):
    with pytest.raises(ValueError, match=r"rank 4, which is not among supportedLoraRanks \[8, 16\]"):
        _llm(llama_two.model, loraPath=str(llama_two.a), supportedLoraRanks=[8, 16])
    with _llm(llama_two.model, supportedLoraRanks=[8]) as llm:
        _session(llm, llama_two.b)  # rank 8: fine
        with pytest.raises(ValueError, match="rank 4, which is not among supportedLoraRanks"):
            _session(llm, llama_two.a)
    with pytest.raises(ValueError, match=r"lora_rank=8 contradicts the adapter .*: its blk.0.attn_k.weight has rank 4"):
        convert_checkpoint(ConversionConfig(str(llama_two.folder), "safetensors", None, "cpu", str(tmp_path),
                                            lora_ckpt=str(llama_two.a), lora_rank=8))
    assert not (tmp_path / "model.tflite").exists()  # refused before any work
