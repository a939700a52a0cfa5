"""Files pocketlm's converter writes run in llama.cpp itself (through
llama-cpp-python, when it is installed): for every architecture both
support, llama.cpp's logits on the converted file match pocketlm's on the
same file. Falcon-RW (ALiBi) has no llama.cpp form and is refused there."""

import numpy as np
import pytest

from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
from pocketlm.model.forward import KVCache
from pocketlm.model.loader import load_model
from tests.fixtures.llama_cpp import SOURCES, source_checkpoint

llama_cpp = pytest.importorskip("llama_cpp")
PROMPT = [1, 17, 200, 33, 5, 99, 250, 7, 64, 128, 3, 77]


def both_logits(path, prompt: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The prompt's logits from pocketlm and from llama.cpp (F32 KV cache) on one file."""
    model, _, _ = load_model(path)
    ours = model.forward(prompt, KVCache(model.cfg, len(prompt)))
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=2, logits_all=True, verbose=False,
                          type_k=0, type_v=0)
    llm.eval(prompt)
    return ours, np.array(llm.scores[: len(prompt)], dtype=np.float32)


@pytest.mark.parametrize("name", list(SOURCES))
@pytest.mark.parametrize("quantized", [False, True], ids=["f32", "q8_0"])
def test_converted_file_runs_in_llama_cpp(tmp_path, name, quantized):
    folder = source_checkpoint(name, tmp_path / "ckpt")
    path = convert_checkpoint(ConversionConfig(input_ckpt=str(folder), ckpt_format="safetensors", model_type=None,
                                               backend="cpu", output_dir=str(tmp_path / "out"),
                                               is_quantized=quantized))
    # llama.cpp picks Phi-3's longrope factors by its context (64, past the original 16: the long ones),
    # pocketlm by where the input ends, as transformers does: a prompt past 16 takes the long ones in both
    ours, ref = both_logits(path, PROMPT + PROMPT[:8] if name == "phi3" else PROMPT)
    # llama.cpp's GELU is a tanh approximation read from an F16 table: within 5e-4 of the logits' range
    scale = float(np.abs(ref).max())
    assert np.abs(ours - ref).max() < (5e-4 if not quantized else 2e-2) * scale
    assert (ours.argmax(-1) == ref.argmax(-1)).mean() >= (1.0 if not quantized else 0.9)


@pytest.mark.parametrize("pre", sorted(__import__("pocketlm.model.gguf_file", fromlist=["x"]).LLAMA_CPP_PRE))
def test_pre_tokenizer_names_split_text_as_llama_cpp_does(tmp_path, pre):
    """Every tokenizer.ggml.pre name pocketlm reads tokenizes as llama.cpp does with that name."""
    from pocketlm.model.forward import Weight
    from pocketlm.model.gguf_file import tokenizer_metadata, write_gguf
    from tests.fixtures.llama_cpp import fixture_path
    from tests.fixtures.tokenizers import corpus

    model, tok, _ = load_model(fixture_path("gpt2"))
    meta = tokenizer_metadata(tok)
    del meta["pre_tokenizer"]  # so the name alone decides, as in a file llama.cpp wrote
    meta["pre"] = pre
    tensors = {n: ((w.data, w.qtype) if isinstance(w, Weight) else (w, "F32")) for n, w in model.w.items()}
    path = write_gguf(tmp_path / f"{pre}.gguf", model.cfg, tensors, meta)
    ours = load_model(path)[1]
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    lines = [t for t in corpus(300, seed=9) if t] + ["x 12345 y", "a+b<=c^d|e`f", "I'VE been 'told 3.14159"]
    for text in lines:
        assert ours.encode(text) == llm.tokenize(text.encode(), add_bos=False, special=False), text


def test_llama3_rope_scaling_runs_the_same_in_llama_cpp(tmp_path):
    """Llama 3.1-style rope scaling travels as llama.cpp's rope_freqs tensor."""
    from tests.fixtures import checkpoints
    from tests.fixtures.tokenizers import train_sentencepiece

    folder = checkpoints.llama(tmp_path / "ckpt", vocab_size=700, rope_theta=500000.0,
                               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0, "original_max_position_embeddings": 32})
    train_sentencepiece(folder, vocab_size=700)
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "out"),
                                               is_quantized=False))
    prompt = [(7 * i + 3) % 700 for i in range(48)]  # long enough for the scaled low frequencies to turn
    ours, ref = both_logits(path, prompt)
    assert np.abs(ours - ref).max() < 5e-4 * float(np.abs(ref).max())


def test_gemma3_query_scale_and_layer_pattern_run_the_same_in_llama_cpp(tmp_path):
    """A query_pre_attn_scalar other than head_dim (folded into the q norm: llama.cpp's gemma3 fixes its
    scale), sliding layers in a pattern of pocketlm's choosing (one flag a layer), the local base, linear
    scaling of the global one and the final soft-cap: llama.cpp gives pocketlm's logits, past the window."""
    from tests.fixtures import checkpoints
    from tests.fixtures.tokenizers import train_sentencepiece

    folder = checkpoints.gemma3(tmp_path / "ckpt", vocab_size=700, final_logit_softcapping=30.0)
    train_sentencepiece(folder, vocab_size=700, add_dummy_prefix=False)
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "out"),
                                               is_quantized=False))
    prompt = [(7 * i + 3) % 700 for i in range(30)]
    ours, ref = both_logits(path, prompt)
    assert np.abs(ours - ref).max() < 5e-4 * float(np.abs(ref).max())
    from pocketlm.model.forward import Model

    want = Model.from_pretrained(folder).forward(prompt, KVCache(load_model(path)[0].cfg, 30))
    np.testing.assert_allclose(ours, want, atol=1e-4, rtol=1e-4)  # the fold keeps the checkpoint's maths


@pytest.mark.parametrize("kind", ["qwen2", "phi4_mini"])
def test_llama_cpp_splits_the_text_of_pocketlms_byte_level_files_as_trained(tmp_path, kind):
    # tokenizer.ggml.pre names the llama.cpp pre-tokenizer of the tokenizer.json's split (qwen2, gpt-4o), so
    # llama.cpp tokenizes the converted file's text as the model's own tokenizer does
    import unicodedata

    from pocketlm.model.gguf_reader import GGUFFile
    from pocketlm.tokenizer import load_tokenizer
    from tests.fixtures import checkpoints, tokenizers

    folder = tmp_path / "ckpt"
    getattr(tokenizers, f"{kind}_tokenizer")(folder)
    tok = load_tokenizer(folder)
    checkpoints.qwen2(folder, vocab_size=tok.vocab_size, bos_token_id=None, eos_token_id=None)
    tokenizers_dir_tok = load_tokenizer(folder)
    path = convert_checkpoint(ConversionConfig(input_ckpt=str(folder), ckpt_format="safetensors", model_type=None,
                                               backend="cpu", output_dir=str(tmp_path / "out"), is_quantized=False))
    assert GGUFFile(path).field("tokenizer.ggml.pre") == ("qwen2" if kind == "qwen2" else "gpt-4o")
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    # where the splits differ from GPT-2's: contractions in any case, digit runs, whitespace runs, newlines
    texts = ["I'm sure they'll say it's 12345 times\n\n  better, DON'T YOU? Hello   world!\n\tx = 3.14159;"]
    if kind == "qwen2":  # and mixed scripts, NFC already (llama.cpp applies no tokenizer.json normalizer)
        texts.append(unicodedata.normalize("NFC", " ".join(tokenizers.mixed_script(40, seed=5))))
    for text in texts:
        assert llm.tokenize(text.encode("utf-8"), add_bos=False, special=False) == tokenizers_dir_tok.encode(text)
