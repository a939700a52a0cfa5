"""Converter, model file and bundler: files the runtime loads back to the
same logits, with MediaPipe's option names."""

import json
import zipfile

import gguf
import numpy as np
import pytest

from pocketlm.genai.bundler import BundleConfig, create_bundle
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
from pocketlm.genai.llm_params import LlmParameters
from pocketlm.model.forward import KVCache, Model
from pocketlm.model.loader import load_model
from tests.fixtures import checkpoints
from tests.fixtures.llama_cpp import without_pocketlm_keys
from tests.fixtures.tokenizers import corpus, train_byte_level_bpe, train_sentencepiece

PROMPT = [1, 17, 200, 33, 5, 99, 250, 7, 64, 128]
ARCHS = ["llama", "gemma", "gemma2", "phi", "stablelm", "gpt2", "falcon", "gemma3", "qwen2", "qwen3", "phi3"]


def with_tokenizer(folder, kind="bpe"):
    if kind == "bpe":
        train_byte_level_bpe(folder, vocab_size=320)
    else:
        train_sentencepiece(folder, vocab_size=700)
    return folder


def logits(model):
    return model.forward(PROMPT, KVCache(model.cfg, 32))


@pytest.mark.parametrize("arch", ARCHS)
def test_float_conversion_reproduces_the_checkpoint(tmp_path, arch):
    folder = with_tokenizer(getattr(checkpoints, arch)(tmp_path / "ckpt"))
    path = convert_checkpoint(ConversionConfig(input_ckpt=str(folder), ckpt_format="safetensors", model_type=None,
                                               backend="cpu", output_dir=str(tmp_path / "out"), is_quantized=False))
    assert path == tmp_path / "out" / "model.tflite"  # MediaPipe's default name; the content is GGUF
    assert path.read_bytes()[:4] == b"GGUF"
    model, tok, _ = load_model(path)
    np.testing.assert_allclose(logits(model), logits(Model.from_pretrained(folder)), atol=1e-4, rtol=1e-4)
    assert tok.encode("hello world") == load_model(folder)[1].encode("hello world")


@pytest.mark.parametrize("bits,symmetric,qtype", [(8, True, "Q8_0"), (4, True, "Q4_0"), (4, False, "Q4_1")])
def test_quantized_conversion_types_and_accuracy(tmp_path, bits, symmetric, qtype):
    folder = with_tokenizer(checkpoints.llama(tmp_path / "ckpt"))
    path = convert_checkpoint(ConversionConfig(
        input_ckpt=str(folder / "model*.safetensors"), ckpt_format="safetensors", model_type="LLAMA", backend="gpu",
        output_dir=str(tmp_path), output_tflite_file=str(tmp_path / "m.bin"),
        is_symmetric=symmetric, attention_quant_bits=bits, feedforward_quant_bits=bits, embedding_quant_bits=8))
    reader = gguf.GGUFReader(str(path))
    types = {t.name: gguf.GGMLQuantizationType(t.tensor_type).name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == qtype and types["blk.1.ffn_down.weight"] == qtype
    assert types["token_embd.weight"] == "Q8_0" and types["blk.0.attn_norm.weight"] == "F32"
    model, _, _ = load_model(path)
    want = logits(Model.from_pretrained(folder))
    got = logits(model)
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= (0.9 if bits == 8 else 0.6)


def test_llama_file_uses_llama_cpp_keys_and_layout(tmp_path):
    folder = with_tokenizer(checkpoints.llama(tmp_path / "ckpt"))
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", "LLAMA", "cpu", str(tmp_path / "o"), is_quantized=False))
    r = gguf.GGUFReader(str(path))
    assert r.fields["general.architecture"].contents() == "llama"
    for key in ("llama.block_count", "llama.embedding_length", "llama.attention.head_count_kv",
                "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.model",
                "tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
        assert key in r.fields, key
    # llama.cpp's rotary layout: q rows permuted from rotate-half to adjacent pairs
    hf_q = np.asarray(load_model(folder)[0].w["blk.0.attn_q.weight"].data)
    q = next(t for t in r.tensors if t.name == "blk.0.attn_q.weight")
    assert not np.array_equal(np.asarray(q.data), hf_q)
    hd = 16
    np.testing.assert_array_equal(np.asarray(q.data)[1], hf_q[hd // 2])  # row 1 = old row head_dim/2 of head 0


def test_llama_cpp_style_file_without_pocketlm_config_loads(tmp_path):
    """A GGUF file with only llama.cpp's keys (as llama.cpp's converter writes) runs."""
    folder = with_tokenizer(checkpoints.llama(tmp_path / "ckpt"))
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"), is_quantized=False))
    without_pocketlm_keys(path, tmp_path / "plain.gguf")
    model, tok, _ = load_model(tmp_path / "plain.gguf")
    np.testing.assert_allclose(logits(model), logits(Model.from_pretrained(folder)), atol=1e-4, rtol=1e-4)


def test_bpe_after_conversion_agrees_with_hugging_face(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    folder = with_tokenizer(checkpoints.llama(tmp_path / "ckpt"))
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"), is_quantized=False))
    ours = load_model(path)[1]
    hf = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    lines = corpus(3000, seed=11)
    same = total = 0
    for line in lines:
        a, b = ours.encode(line), hf.encode(line, add_special_tokens=False).ids
        total += max(len(a), len(b))
        same += sum(x == y for x, y in zip(a, b))
    agreement = same / total
    print(f"\nbyte-level BPE after conversion: {agreement:.4%} of {total} tokens agree with tokenizers")
    assert agreement >= 0.995


def test_sentencepiece_travels_in_the_file(tmp_path):
    folder = with_tokenizer(checkpoints.gemma(tmp_path / "ckpt"), kind="sp")
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", "GEMMA_2B", "cpu", str(tmp_path / "o"),
                                               vocab_model_file=str(folder / "tokenizer.model")))
    tok = load_model(path)[1]
    text = "naïve café 👍🏽 x²"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode(text) == load_model(folder)[1].encode(text)


def test_bundle_round_trip_and_token_checks(tmp_path):
    folder = with_tokenizer(checkpoints.gemma(tmp_path / "ckpt"), kind="sp")
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"), is_quantized=False))
    task = create_bundle(BundleConfig(tflite_model=str(path), tokenizer_model=str(folder / "tokenizer.model"),
                                      start_token="<s>", stop_tokens=["</s>"], output_filename=str(tmp_path / "m.task"),
                                      prompt_prefix="<start_of_turn>user\n"))
    with zipfile.ZipFile(task) as zf:
        params = LlmParameters.FromString(zf.read("METADATA"))
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    assert list(params.stop_tokens) == ["</s>"] and params.prompt_template.prompt_prefix == "<start_of_turn>user\n"
    model, tok, m = load_model(task)
    np.testing.assert_allclose(logits(model), logits(Model.from_pretrained(folder)), atol=1e-4, rtol=1e-4)
    assert m["start_token"] == "<s>"
    with pytest.raises(ValueError, match="not a single token"):
        create_bundle(BundleConfig(str(path), str(folder / "tokenizer.model"), "<nope>", ["</s>"],
                                   str(tmp_path / "bad.task")))
    assert not (tmp_path / "bad.task").exists()


@pytest.mark.parametrize("kw,match", [
    ({"ckpt_format": "onnx"}, "ckpt_format"),
    ({"backend": "npu"}, "backend"),
    ({"model_type": "GPT5"}, "model_type"),
    ({"attention_quant_bits": 3}, "attention_quant_bits"),
    ({"lora_rank": 4}, "lora_ckpt and lora_rank must be either both provided"),
    ({"lora_ckpt": "a.safetensors", "lora_rank": 0}, "lora_rank must be a positive integer"),
    ({"combine_file_only": True}, "combine_file_only=True is not supported"),
    ({"obfuscate": True}, "obfuscate"),
    ({"fp16_scale": 0.5}, "fp16_scale"),
    ({"image_encoder_file": "enc.tflite"}, "image_encoder_file"),
    ({"image_adapter_file": "a.tflite"}, "image_adapter_file"),
    ({"submodel_type": "GEMMA_2B"}, "submodel_type"),
    ({"lora_output_tflite_file": "l.bin"}, "lora_output_tflite_file is the output of a LoRA conversion"),
])
def test_bad_options_are_clear_errors(tmp_path, kw, match):
    args = dict(input_ckpt=str(tmp_path), ckpt_format="safetensors", model_type=None, backend="cpu",
                output_dir=str(tmp_path))
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        ConversionConfig(**args)


def test_model_type_must_match_the_checkpoint(tmp_path):
    folder = with_tokenizer(checkpoints.llama(tmp_path / "ckpt"))
    with pytest.raises(ValueError, match="expects a 'phi' checkpoint"):
        convert_checkpoint(ConversionConfig(str(folder), "safetensors", "PHI_2", "cpu", str(tmp_path / "o"), is_quantized=False))


def test_broken_model_files_are_refused_with_the_file_named(tmp_path):
    folder = with_tokenizer(checkpoints.llama(tmp_path / "ckpt"))
    good = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"), is_quantized=False))
    data = good.read_bytes()
    (tmp_path / "truncated.gguf").write_bytes(data[: len(data) // 2])
    (tmp_path / "magic.gguf").write_bytes(b"GGUX" + data[4:])
    (tmp_path / "foreign.bin").write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(ValueError, match="truncated.gguf"):
        load_model(tmp_path / "truncated.gguf")
    for name in ("magic.gguf", "foreign.bin"):
        with pytest.raises(ValueError, match=name):
            load_model(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.gguf")


def test_missing_tokenizer_is_an_error_before_writing(tmp_path):
    folder = checkpoints.llama(tmp_path / "ckpt")  # no tokenizer files
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"), is_quantized=False))
    assert not list((tmp_path).glob("o/*"))


def test_interrupted_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    import pocketlm.model.gguf_file as gf

    folder = with_tokenizer(checkpoints.llama(tmp_path / "ckpt"))

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(gf.gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"), is_quantized=False))
    assert list((tmp_path / "o").iterdir()) == []


def test_builtin_smollm2_answers(tmp_path):
    from pocketlm.builtin import CHATML, default_model_path

    try:
        path = default_model_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    model, tok, _ = load_model(path)
    assert model.cfg.n_layers == 30 and model.cfg.n_kv_heads == 3 and model.cfg.vocab_size == 49152
    ids = tok.encode(CHATML.format(prompt="What is the capital of France?"))
    assert ids[:2] == [1, 4093]  # <|im_start|>user
    cache = KVCache(model.cfg, len(ids) + 16)
    logits, out = model.forward(ids, cache), []
    for _ in range(12):
        out.append(int(np.argmax(logits[-1])))
        logits = model.forward([out[-1]], cache)
    assert "Paris" in tok.decode(out)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("weight_type,bits", [("F32", None), ("Q8_0", 8), ("Q4_0", 4)])
def test_round_trip_gives_the_same_greedy_tokens(tmp_path, arch, weight_type, bits):
    folder = with_tokenizer(getattr(checkpoints, arch)(tmp_path / "ckpt"))
    opts = dict(is_quantized=False) if bits is None else dict(attention_quant_bits=bits, feedforward_quant_bits=bits,
                                        embedding_quant_bits=bits)
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"), **opts))
    converted = load_model(path)[0]
    direct = Model.from_pretrained(folder, weight_type=weight_type)

    def greedy(model):
        cache = KVCache(model.cfg, 48)
        lg, out = model.forward(PROMPT, cache), []
        for _ in range(24):
            out.append(int(np.argmax(lg[-1])))
            lg = model.forward([out[-1]], cache)
        return out

    assert greedy(converted) == greedy(direct)


def test_unsupported_tensor_type_in_a_gguf_file_is_named(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "q5.gguf"), "llama")
    w.add_tensor("token_embd.weight", np.zeros((4, 176), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q5_K)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    with pytest.raises(ValueError, match="Q5_K"):
        load_model(tmp_path / "q5.gguf")


def test_llama_file_runs_in_llama_cpp(tmp_path):
    """Where llama-cpp-python is installed: our Llama file gives llama.cpp the same logits."""
    llama_cpp = pytest.importorskip("llama_cpp")
    train_byte_level_bpe(tmp_path / "ckpt", vocab_size=320)
    folder = checkpoints.llama(tmp_path / "ckpt", vocab_size=320)
    for quantized in (False, True):
        path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", "LLAMA", "cpu",
                                                   str(tmp_path / f"o{quantized}"), is_quantized=quantized))
        model = load_model(path)[0]
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, logits_all=True, verbose=False, type_k=0, type_v=0)
        llm.eval(PROMPT)
        np.testing.assert_allclose(logits(model), np.array(llm.scores[: len(PROMPT)]), atol=1e-4)


def test_builtin_model_carries_its_chat_template():
    from pocketlm.builtin import default_model_path

    try:
        path = default_model_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    assert "<|im_start|>" in load_model(path)[2]["chat_template"]


def test_sentencepiece_vocabulary_without_the_model_matches_sentencepiece(tmp_path):
    """A GGUF "llama" vocabulary of pieces and scores (as llama.cpp writes it,
    without the tokenizer.model) tokenizes as SentencePiece does."""
    from pocketlm.model.gguf_file import _tokenizer_from_gguf
    from pocketlm.model.gguf_reader import GGUFFile
    from pocketlm.tokenizer import ScoredPieceTokenizer

    folder = with_tokenizer(checkpoints.gemma(tmp_path / "ckpt"), kind="sp")
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"), is_quantized=False))
    r = GGUFFile(path)
    del r.fields["pocketlm.tokenizer.sp_model"]
    scored = _tokenizer_from_gguf(r)
    assert isinstance(scored, ScoredPieceTokenizer)
    sp = load_model(folder)[1]
    lines = [t for t in corpus(300, seed=5) if t]
    for t in lines:
        assert scored.encode(t) == sp.encode(t), repr(t)
        assert scored.decode(scored.encode(t)) == sp.decode(sp.encode(t))


@pytest.mark.parametrize("arch,model_type", [("gemma3", "GEMMA3"), ("qwen2", "QWEN2"), ("qwen3", "QWEN3"),
                                             ("phi3", "PHI3")])
def test_new_architectures_run_from_a_task_bundle(tmp_path, arch, model_type):
    """Gemma 3, Qwen2, Qwen3 and Phi-3 through the .task path: converted under their model_type name,
    bundled with a SentencePiece tokenizer, loaded back to the checkpoint's logits (a prompt past
    Gemma 3's window and Phi-3's original 16 positions)."""
    folder = with_tokenizer(getattr(checkpoints, arch)(tmp_path / "ckpt"), kind="sp")
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", model_type, "cpu", str(tmp_path / "o"),
                                               is_quantized=False))
    task = create_bundle(BundleConfig(tflite_model=str(path), tokenizer_model=str(folder / "tokenizer.model"),
                                      start_token="<s>", stop_tokens=["</s>"], output_filename=str(tmp_path / "m.task")))
    model = load_model(task)[0]
    prompt = PROMPT * 2
    np.testing.assert_allclose(model.forward(prompt, KVCache(model.cfg, 32)),
                               Model.from_pretrained(folder).forward(prompt, KVCache(model.cfg, 32)), atol=1e-4,
                               rtol=1e-4)
    with pytest.raises(ValueError, match="expects a 'llama' checkpoint"):
        convert_checkpoint(ConversionConfig(str(folder), "safetensors", "LLAMA", "cpu", str(tmp_path / "x")))
