"""The models phones run now, as a user gets them: a checkpoint of each new
architecture saved by transformers 5 with its own kind of tokenizer
(Gemma 3 and Phi-3.5: SentencePiece written as tokenizer.json, no
tokenizer.model; Qwen2.5, Qwen3 and Phi-4-mini: byte-level BPE) and its real
chat template. It answers through `pocketlm generate` on the folder, and
through MediaPipe's C API and Kotlin on the converted GGUF, with the prompt
wrapped as transformers' apply_chat_template wraps it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from pocketlm.cli import main
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
from pocketlm.tokenizer import HFTokenizer, load_tokenizer
from tests.fixtures import checkpoints
from tests.fixtures.tokenizers import train_byte_level_bpe, transformers_sentencepiece
from tests.genai.test_c_api import run_c, run_python
from tests.genai.test_chat_template_files import QUESTION, answer, chat_ids_of
from tests.jvm.test_jvm_bridge import jvm, run_jvm  # noqa: F401  (jvm is a fixture)

transformers = pytest.importorskip("transformers")
TEMPLATES = Path(__file__).parent.parent / "fixtures" / "chat_templates"
MAX_TOKENS = 160

# architecture, tokenizer ("sp": SentencePiece by transformers 5's converter, of that class; "bpe": byte-level),
# template, BOS, EOS, the template's other special tokens
MODELS = {
    "gemma3": ("GemmaTokenizer", "google-gemma-3-4b-it.jinja", "<bos>", "<end_of_turn>", ["<start_of_turn>"]),
    "phi3-3.5": ("LlamaTokenizer", "microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|end|>",
                 ["<|user|>", "<|assistant|>", "<|system|>"]),
    "phi3-4-mini": ("bpe", "microsoft-Phi-4-mini-instruct.jinja", None, "<|end|>",
                    ["<|user|>", "<|assistant|>", "<|system|>"]),
    "qwen2": ("bpe", "Qwen-Qwen2.5-7B-Instruct.jinja", None, "<|im_end|>", ["<|im_start|>"]),
    "qwen3": ("bpe", "Qwen-Qwen3-0.6B.jinja", None, "<|im_end|>", ["<|im_start|>"]),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def saved(request, tmp_path_factory):
    """(checkpoint folder saved by transformers 5, the converter's GGUF of it)."""
    name = request.param
    kind, template, bos, eos, extra = MODELS[name]
    root = tmp_path_factory.mktemp(name)
    folder = root / "ckpt"
    if kind == "bpe":
        tok = transformers.PreTrainedTokenizerFast(
            tokenizer_file=str(train_byte_level_bpe(root / "bpe", vocab_size=320) / "tokenizer.json"),
            bos_token=bos, eos_token=eos, extra_special_tokens={f"t{i}": t for i, t in enumerate(extra)})
    else:
        transformers_sentencepiece(root / "sp", tokenizer_class=kind)
        tok = transformers.AutoTokenizer.from_pretrained(root / "sp")
        tok.add_special_tokens({"eos_token": eos, "additional_special_tokens": extra})
    tok.chat_template = (TEMPLATES / template).read_text()
    arch = name.split("-")[0]
    getattr(checkpoints, arch)(folder, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, max_position_embeddings=512)
    tok.save_pretrained(folder)
    assert not (folder / "tokenizer.model").exists() and (folder / "chat_template.jinja").is_file()
    if kind != "bpe":  # the SentencePiece model as transformers 5 saves it: a tokenizer.json pocketlm reads itself
        assert isinstance(load_tokenizer(folder), HFTokenizer)
    model = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(root / "out"),
                                                is_quantized=False))
    return folder, model


def test_the_folder_answers_from_pocketlm_generate_with_its_template(saved):
    folder, _ = saved
    text, ids = chat_ids_of(folder)
    want, prefilled = answer(folder, max_tokens=MAX_TOKENS)
    assert prefilled == len(ids)  # the rendered conversation, token for token
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["generate", "--model", str(folder), "--max-tokens", str(MAX_TOKENS), "--top-k", "1",
                     QUESTION]) == 0
    assert out.getvalue() == want + "\n"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["generate", "--model", str(folder), "--max-tokens", str(MAX_TOKENS), "--top-k", "1", "--raw",
                     QUESTION]) == 0
    assert out.getvalue() != want + "\n"  # unwrapped, the prompt is another one


def test_the_c_api_answers_the_converted_file_as_the_folder(program, saved):
    folder, model = saved
    rc, got = run_c(program, model, max_tokens=MAX_TOKENS, turns=(QUESTION, ""))
    assert rc == 0, got
    want = run_python(model, max_tokens=MAX_TOKENS, turns=(QUESTION, ""))
    assert want["SYNC1"] == answer(folder, max_tokens=MAX_TOKENS)[0]
    # the C API returns a reply of whitespace only as it is; the Python API strips it, as Android does
    assert got["SIZE"] == want["SIZE"] and got["SYNC1"].lstrip() == want["SYNC1"]


def test_kotlin_answers_the_converted_file_as_python(jvm, saved):  # noqa: F811
    folder, model = saved
    rc, got, err = run_jvm(jvm, "generate", model, max_tokens=MAX_TOKENS, turns=(QUESTION, ""))
    assert rc == 0, (got, err)
    want = answer(folder, max_tokens=MAX_TOKENS)[0]
    # run_jvm reads with universal newlines (\r becomes \n), a record ends at the first \x1e, and the bridge hands
    # text over as C strings, as MediaPipe's C API does (a NUL ends it)
    as_read = want.replace("\r\n", "\n").replace("\r", "\n").split("\x1e")[0].split("\x00")[0]
    assert got["SYNC"].strip() == as_read.strip()
