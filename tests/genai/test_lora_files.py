"""LoRA adapter files across tools: adapters llama.cpp's convert_lora_to_gguf.py
wrote (tests/fixtures/llama_cpp/lora/*.gguf) read by the Python and the C
readers; `pocketlm convert-lora`; PEFT's rank_pattern / alpha_pattern and
rsLoRA scales; MediaPipe's C API with LlmSessionConfig.lora_path; and
llama.cpp itself running the adapter pocketlm's converter writes, where
llama_cpp imports."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.cli import main
from pocketlm.errors import ModelFileError
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
from pocketlm.model.forward import KVCache, Model
from pocketlm.model.loader import load_model
from pocketlm.model.lora import load_adapter
from tests.fixtures import checkpoints
from tests.fixtures.llama_cpp import fixture_path, source_checkpoint
from tests.fixtures.tokenizers import train_byte_level_bpe

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
from tests.fixtures.lora import LORA_SEEDS, lora_fixture_path, peft_adapter, peft_model  # noqa: E402

IDS = [1, 17, 200, 33, 5, 99, 250, 7, 64, 128]


def _ref_logits(model, ids=IDS) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


@pytest.mark.parametrize("name", [n for n in LORA_SEEDS if n != "gpt2"])
def test_adapters_llama_cpp_converted_run_as_peft_runs_them(name, tmp_path):
    """The F16 model and adapter llama.cpp wrote, in both engines, against the F32
    checkpoint with the PEFT adapter it was converted from (to F16 rounding)."""
    from pocketlm.engine.native import NativeLora, NativeModel, NativeTokens

    folder = source_checkpoint(name, tmp_path / "ckpt")
    want = _ref_logits(peft_model(folder, peft_adapter(folder, tmp_path / "adapter", seed=LORA_SEEDS[name])))
    model, _, _ = load_model(fixture_path(name))
    lora_file = lora_fixture_path(name)
    ours = model.forward(IDS, KVCache(model.cfg, 16), lora=load_adapter(lora_file, model.cfg))
    span = np.ptp(want)
    np.testing.assert_allclose(ours, want, atol=3e-3 * span, rtol=0)
    pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
    nm = NativeModel.open(fixture_path(name), cfg=model.cfg)
    c = NativeTokens(nm, 16, "F32", lora=NativeLora.open(nm, lora_file)).eval(IDS, all_logits=True)
    np.testing.assert_allclose(c, ours, atol=1e-5 * span, rtol=0)


def test_a_gpt2_adapter_llama_cpp_converted_is_refused_with_its_shapes():
    """llama.cpp's LoRA converter writes GPT-2's Conv1D pairs transposed against
    its own attn_qkv (llama-cpp-python 0.3.36 loads that file and crashes on the
    first evaluation); both pocketlm readers refuse it and name the shapes."""
    model, _, _ = load_model(fixture_path("gpt2"))
    lora_file = lora_fixture_path("gpt2")
    with pytest.raises(ModelFileError, match=r"\(4, 192\) / .lora_b \(64, 4\) does not fit the base model's "
                                             r"blk.0.attn_qkv.weight of shape \(192, 64\)"):
        load_adapter(lora_file, model.cfg)
    pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
    from pocketlm.engine.native import NativeLora, NativeModel

    with pytest.raises(ModelFileError, match=r"blk.0.attn_qkv.weight.lora_b has 64 rows, the base model's q, k and v "
                                             r"have 192 together"):
        NativeLora.open(NativeModel.open(fixture_path("gpt2"), cfg=model.cfg), lora_file)


def test_rank_and_alpha_patterns_and_rslora_scale_as_peft(tmp_path):
    folder = checkpoints.llama(tmp_path / "ckpt", seed=4)
    for i, extra in enumerate([dict(rank_pattern={"q_proj": 8, "down_proj": 2}, alpha_pattern={"v_proj": 32}),
                               dict(use_rslora=True, r=16, alpha=8)]):
        adapter = peft_adapter(folder, tmp_path / f"a{i}", seed=i, **extra)
        want = _ref_logits(peft_model(folder, adapter))
        model = Model.from_pretrained(folder)
        lora = load_adapter(adapter, model.cfg)
        ours = model.forward(IDS, KVCache(model.cfg, 16), lora=lora)
        np.testing.assert_allclose(ours, want, atol=1e-4 * np.ptp(want), rtol=0)
    assert sorted({p.rank for p in load_adapter(tmp_path / "a0", model.cfg).pairs.values()}) == [2, 4, 8]


def test_convert_lora_writes_the_converters_file(tmp_path, capsys):
    folder = checkpoints.phi(tmp_path / "ckpt", seed=2)
    train_byte_level_bpe(folder, vocab_size=256)
    adapter = peft_adapter(folder, tmp_path / "adapter", seed=3)
    model_file = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "out"),
                                                     lora_ckpt=str(adapter), lora_rank=4))
    assert main(["convert-lora", "--model", str(model_file), "--adapter", str(adapter),
                 "--output", str(tmp_path / "cli.gguf")]) in (0, None)
    assert "rank 4" in capsys.readouterr().out
    model, _, _ = load_model(model_file)
    a = load_adapter(tmp_path / "out" / "lora.tflite", model.cfg)
    b = load_adapter(tmp_path / "cli.gguf", model.cfg)
    assert a.pairs.keys() == b.pairs.keys()
    for k in a.pairs:
        np.testing.assert_array_equal(a.pairs[k].b, b.pairs[k].b)
    assert main(["convert-lora", "--model", str(model_file), "--adapter", str(adapter), "--output",
                 str(tmp_path / "x.gguf"), "--lora-rank", "8"]) != 0
    assert "rank 4, which is not among lora_rank [8]" in capsys.readouterr().err
    assert not (tmp_path / "x.gguf").exists()


# ---- MediaPipe's C API ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def c_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("capi_lora")
    folder = checkpoints.llama(root / "ckpt", seed=3, vocab_size=320, eos_token_id=0, bos_token_id=1)
    train_byte_level_bpe(folder, vocab_size=320)
    adapter = peft_adapter(folder, root / "adapter", seed=5)
    model = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(root / "out"),
                                                lora_ckpt=str(adapter), lora_rank=4))
    return model, root / "out" / "lora.tflite", adapter


def _python_greedy(model, lora, prompt):
    opts = LlmInferenceOptions.builder().setModelPath(str(model)).setMaxTokens(48).build()
    with LlmInference.createFromOptions(None, opts) as llm:
        b = LlmInferenceSessionOptions.builder().setTopK(1).setTemperature(0.0)
        if lora:
            b.setLoraPath(str(lora))
        s = LlmInferenceSession.createFromOptions(llm, b.build())
        s.addQueryChunk(prompt)
        return s.generateResponse()


def test_c_api_lora_path_gives_pythons_text(c_case, program):
    model, lora_file, adapter = c_case
    exe = program
    prompt = "the model runs on a phone"
    env = dict(os.environ, MP_LORA_PATH=str(lora_file))
    out = subprocess.run([str(exe), str(model), "48", "1", "0", "0", prompt, ""], capture_output=True, text=True,
                         env=env, timeout=120)
    records = dict(r.split(" ", 1) for r in out.stdout.split("\x1e") if " " in r)
    assert out.returncode == 0, out.stdout + out.stderr
    assert records["SYNC1"] == _python_greedy(model, lora_file, prompt) == _python_greedy(model, adapter, prompt)
    assert records["SYNC1"] != _python_greedy(model, None, prompt)
    # a PEFT folder is named as such; a rank outside supported_lora_ranks is refused
    for env_extra, msg in ((dict(MP_LORA_PATH=str(adapter)), "is a PEFT adapter folder"),
                           (dict(MP_LORA_PATH=str(lora_file), MP_LORA_RANK="8"), "rank 4, which is not among"),
                           (dict(MP_LORA_PATH=str(model)), "not a LoRA adapter (it is a model file)")):
        out = subprocess.run([str(exe), str(model), "48", "1", "0", "0", prompt, ""], capture_output=True, text=True,
                             env=dict(os.environ, **env_extra), timeout=120)
        assert out.returncode != 0 and "CreateSession" in out.stdout and msg in out.stdout, out.stdout


# ---- llama.cpp ---------------------------------------------------------------------------------


def test_llama_cpp_runs_the_adapter_pocketlm_writes(c_case):
    llama_cpp = pytest.importorskip("llama_cpp")
    model_file, lora_file, _ = c_case
    model, _, _ = load_model(model_file)
    ours = model.forward(IDS, KVCache(model.cfg, 16), lora=load_adapter(lora_file, model.cfg))
    llm = llama_cpp.Llama(str(model_file), lora_path=str(lora_file), n_ctx=64, logits_all=True, verbose=False,
                          n_threads=2)
    llm.eval(IDS)
    theirs = np.asarray(llm.scores[:len(IDS)], dtype=np.float32)
    base = model.forward(IDS, KVCache(model.cfg, 16))
    span = np.ptp(ours)
    np.testing.assert_allclose(theirs, ours, atol=2e-2 * span, rtol=0)  # Q8_0 weights: llama.cpp's own kernels
    assert np.abs(base - ours).max() > 0.1 * span


def test_c_api_runs_a_fused_phi3_adapter_as_python(tmp_path, program):
    # Phi-3's adapters on qkv_proj and gate_up_proj are written fused (attn_qkv, ffn_up = [gate; up]) as
    # llama.cpp's converter writes them; MediaPipe's C API splits them onto q/k/v and gate/up
    folder = checkpoints.phi3(tmp_path / "ckpt", seed=4, vocab_size=320, eos_token_id=0, bos_token_id=1)
    train_byte_level_bpe(folder, vocab_size=320)
    adapter = peft_adapter(folder, tmp_path / "adapter", seed=6, targets=["qkv_proj", "o_proj", "gate_up_proj",
                                                                          "down_proj"])
    model = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "out"),
                                                lora_ckpt=str(adapter), lora_rank=4))
    lora_file = tmp_path / "out" / "lora.tflite"
    from pocketlm.model.gguf_reader import GGUFFile

    names = {t.name for t in GGUFFile(lora_file).tensors}
    assert "blk.0.ffn_up.weight.lora_b" in names and "blk.0.ffn_gate.weight.lora_b" not in names
    prompt = "the model runs on a phone"
    out = subprocess.run([str(program), str(model), "48", "1", "0", "0", prompt, ""], capture_output=True, text=True,
                         env=dict(os.environ, MP_LORA_PATH=str(lora_file)), timeout=120)
    records = dict(r.split(" ", 1) for r in out.stdout.split("\x1e") if " " in r)
    assert out.returncode == 0, out.stdout + out.stderr
    assert records["SYNC1"] == _python_greedy(model, adapter, prompt)
    assert records["SYNC1"] != _python_greedy(model, None, prompt)
