"""Chat templates where transformers 5 saves them (chat_template.jinja, with
named ones in additional_chat_templates/, and no chat_template key in
tokenizer_config.json), and a processor's chat_template.json, kept end to
end: checkpoint folder -> LlmInference, converter -> GGUF, bundler -> .task,
and MediaPipe's C API on both files gives the Python API's text."""

import json
import shutil
from pathlib import Path

import gguf
import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions, PromptTemplates
from pocketlm.errors import ModelFileError
from pocketlm.genai.bundler import BundleConfig, create_bundle
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
from pocketlm.tokenizer import load_tokenizer
from tests.fixtures import checkpoints
from tests.fixtures.tokenizers import train_byte_level_bpe, train_sentencepiece

transformers = pytest.importorskip("transformers")

# SmolLM2-135M-Instruct's chat template, as its checkpoint carries it: ChatML with a default system message
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>"
           "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
           "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
TOOL_USE = "{% for message in messages %}{{ message['content'] }}{% endfor %}{{ '[tools]' }}"
QUESTION = "What is the capital of France?"
MAX_TOKENS = 192


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A byte-level BPE tokenizer.json (ids 0 <|endoftext|>, 1 <|im_start|>)."""
    return train_byte_level_bpe(tmp_path_factory.mktemp("bpe"), vocab_size=320) / "tokenizer.json"


def hf_tokenizer(bpe, chat_template):
    """transformers' own tokenizer over bpe, with <|im_end|> (id 320) added as SmolLM2's EOS."""
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(bpe), bos_token="<|im_start|>",
                                               eos_token="<|im_end|>")
    assert tok.convert_tokens_to_ids("<|im_end|>") == 320
    tok.chat_template = chat_template
    return tok


def saved(bpe, folder, chat_template, **kw):
    """folder with the tokenizer as transformers' save_pretrained writes it."""
    hf_tokenizer(bpe, chat_template).save_pretrained(folder, **kw)
    return folder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, bpe):
    """A tiny Llama and its tokenizer, both saved by transformers 5: the template is in chat_template.jinja only."""
    folder = checkpoints.llama(tmp_path_factory.mktemp("smol") / "ckpt", vocab_size=321, bos_token_id=1,
                               eos_token_id=320, max_position_embeddings=512)
    saved(bpe, folder, SMOLLM2)
    assert (folder / "chat_template.jinja").read_text() == SMOLLM2
    assert "chat_template" not in json.loads((folder / "tokenizer_config.json").read_text())
    return folder


@pytest.fixture(scope="module")
def files(ckpt, tmp_path_factory):
    """The converter's GGUF of ckpt, and .task bundles of it: one without prompt fields, one with explicit ones."""
    out = tmp_path_factory.mktemp("files")
    model = convert_checkpoint(ConversionConfig(str(ckpt), "safetensors", None, "cpu", str(out), is_quantized=False))
    bundles = {}
    for name, kw in (("task", {}), ("explicit", dict(prompt_prefix="<|im_start|>user ", prompt_suffix=" model:"))):
        bundles[name] = create_bundle(BundleConfig(str(model), str(ckpt / "tokenizer.json"), start_token="<|im_start|>",
                                                   stop_tokens=["<|im_end|>"], output_filename=str(out / name), **kw))
    return {"gguf": model, **bundles}


def chat_ids_of(ckpt):
    """(text, ids) of QUESTION as transformers' apply_chat_template renders it, generation prompt included."""
    hf = transformers.AutoTokenizer.from_pretrained(ckpt)
    text = hf.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True, tokenize=False)
    return text, hf(text, add_special_tokens=False)["input_ids"]


def chat_ids(ckpt):
    text, ids = chat_ids_of(ckpt)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    return text, ids


def answer(model, prompt=QUESTION, templates=None, max_tokens=MAX_TOKENS):
    """(greedy response, tokens prefilled) of one turn through the Python API."""
    opts = LlmInferenceOptions.builder().setModelPath(str(model)).setMaxTokens(max_tokens).build()
    with LlmInference.createFromOptions(None, opts) as llm:
        b = LlmInferenceSessionOptions.builder().setTopK(1)
        if templates is not None:
            b = b.setPromptTemplates(templates)
        with LlmInferenceSession.createFromOptions(llm, b.build()) as s:
            s.addQueryChunk(prompt)
            return s.generateResponse(), s.last_stats.prefill_tokens


# -- where the template is read from -------------------------------------------------------


def test_a_transformers_5_folder_wraps_the_prompt_as_apply_chat_template(ckpt):
    assert load_tokenizer(ckpt).chat_template == SMOLLM2
    text, ids = chat_ids(ckpt)
    wrapped, n = answer(ckpt)
    assert n == len(ids)  # the tokenizer adds no BOS: the prompt is the rendered conversation, token for token
    assert answer(ckpt, text, PromptTemplates())[0] == wrapped  # the same as the rendered text sent as it is
    plain, n_plain = answer(ckpt, templates=PromptTemplates())
    assert n_plain == len(load_tokenizer(ckpt).encode(QUESTION)) < n and plain != wrapped


def test_named_templates_give_the_default_as_transformers_does(bpe, tmp_path):
    named = {"default": SMOLLM2, "tool_use": TOOL_USE}
    jinja = saved(bpe, tmp_path / "jinja", named)  # transformers 5: chat_template.jinja + additional_chat_templates/
    assert (jinja / "additional_chat_templates" / "tool_use.jinja").is_file()
    legacy = saved(bpe, tmp_path / "legacy", named, save_jinja_files=False)  # tokenizer_config.json: a list
    assert isinstance(json.loads((legacy / "tokenizer_config.json").read_text())["chat_template"], list)
    for folder in (jinja, legacy):
        assert transformers.AutoTokenizer.from_pretrained(folder).get_chat_template() == SMOLLM2
        assert load_tokenizer(folder).chat_template == SMOLLM2


def test_the_jinja_file_wins_over_a_template_left_in_tokenizer_config(bpe, tmp_path):
    folder = saved(bpe, tmp_path / "both", SMOLLM2)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**cfg, "chat_template": TOOL_USE}))
    assert transformers.AutoTokenizer.from_pretrained(folder).get_chat_template() == SMOLLM2
    assert load_tokenizer(folder).chat_template == SMOLLM2


def test_named_templates_without_a_default_are_refused_by_name(bpe, tmp_path):
    for folder, kw in ((tmp_path / "jinja", {}), (tmp_path / "legacy", dict(save_jinja_files=False))):
        saved(bpe, folder, {"chatml": SMOLLM2, "tool_use": TOOL_USE}, **kw)
        with pytest.raises(ValueError, match="no default"):  # transformers: no template to take without a name
            transformers.AutoTokenizer.from_pretrained(folder).get_chat_template()
        with pytest.raises(ModelFileError, match=r"chatml, tool_use.*'default'") as e:
            load_tokenizer(folder)
        assert str(folder) in str(e.value)


def test_a_processor_chat_template_json_is_read(bpe, tmp_path):
    folder = saved(bpe, tmp_path / "proc", None)
    assert not (folder / "chat_template.jinja").exists()
    assert load_tokenizer(folder).chat_template is None
    # transformers 4.x processors wrote the template there: {"chat_template": ...}
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": SMOLLM2}, indent=2))
    assert load_tokenizer(folder).chat_template == SMOLLM2
    named = [{"name": "default", "template": SMOLLM2}, {"name": "tool_use", "template": TOOL_USE}]
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": named}))
    assert load_tokenizer(folder).chat_template == SMOLLM2


# -- converter, bundler ----------------------------------------------------------------------


def gguf_template(path):
    f = gguf.GGUFReader(str(path)).fields.get("tokenizer.chat_template")
    return None if f is None else bytes(f.parts[f.data[0]]).decode("utf-8")


def test_the_converter_writes_the_jinja_template_into_the_gguf(files):
    assert gguf_template(files["gguf"]) == SMOLLM2


def test_the_converter_reads_the_jinja_template_beside_a_sentencepiece_model(ckpt, tmp_path):
    folder = checkpoints.llama(tmp_path / "sp", vocab_size=700)
    train_sentencepiece(folder, vocab_size=700)
    shutil.copy(ckpt / "chat_template.jinja", folder)
    out = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "out"),
                                              vocab_model_file=str(folder / "tokenizer.model")))
    assert gguf_template(out) == SMOLLM2


def test_a_task_without_prompt_fields_wraps_with_the_gguf_template(ckpt, files):
    _, ids = chat_ids(ckpt)
    wrapped, n = answer(files["task"])
    # the bundle's start token <|im_start|> opens the rendered conversation, not a second one before it
    assert ids[0] == 1 and n == len(ids)
    assert wrapped == answer(ckpt)[0] == answer(files["gguf"])[0]  # the folder's prompt, token for token
    plain, _ = answer(files["task"], templates=PromptTemplates())
    assert plain != wrapped


# -- MediaPipe's C API ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gguf", "task", "explicit"])
def test_the_c_api_wraps_as_the_python_api(program, files, kind):
    """The C program gives Python's text for the same file, and Python's differs from the unwrapped prompt's:
    the C API wrapped it the same way (the .task's template from the GGUF inside; explicit prompt fields win)."""
    from tests.genai.test_c_api import run_python

    turns = (QUESTION, "-")  # the tiny model never stops: one turn, and a clone's answer to it
    from tests.genai.test_c_api import run_c

    rc, got = run_c(program, files[kind], max_tokens=MAX_TOKENS, turns=turns)
    assert rc == 0, got
    want = run_python(files[kind], max_tokens=MAX_TOKENS, turns=turns)
    assert {k: got[k] for k in want} == want
    assert want["SYNC1"] != answer(files[kind], templates=PromptTemplates())[0]
    if kind == "explicit":
        assert want["SYNC1"] != answer(files["task"])[0]


# -- the models phones run now: each architecture's checkpoint with its real template -----------------------

TEMPLATES = Path(__file__).parent.parent / "fixtures" / "chat_templates"
# template, architecture (tests.fixtures.checkpoints), BOS, EOS, the template's other special tokens
ARCH_TEMPLATES = [
    ("google-gemma-3-4b-it.jinja", "gemma3", "<bos>", "<end_of_turn>", ["<start_of_turn>"]),
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2", None, "<|im_end|>", []),
    ("Qwen-Qwen3-0.6B.jinja", "qwen3", None, "<|im_end|>", []),
    ("microsoft-Phi-3.5-mini-instruct.jinja", "phi3", "<s>", "<|end|>", ["<|user|>", "<|assistant|>", "<|system|>"]),
    ("microsoft-Phi-4-mini-instruct.jinja", "phi3", None, "<|end|>", ["<|user|>", "<|assistant|>", "<|system|>"]),
    ("upstage-SOLAR-10.7B-Instruct-v1.0.jinja", "llama", "<s>", "</s>", []),
]
# each template on its own architecture, and on Llama's (the template is the tokenizer's, whatever the model)
CASES = ARCH_TEMPLATES + [(a[0], "llama", *a[2:]) for a in ARCH_TEMPLATES if a[1] != "llama"]


@pytest.fixture(scope="module", params=CASES, ids=[f"{a[1]}-{a[0][:-6]}" for a in CASES])
def arch_ckpt(request, tmp_path_factory, bpe):
    """A checkpoint folder saved by transformers 5 with a real template in chat_template.jinja."""
    name, arch, bos, eos, extra = request.param
    template = (TEMPLATES / name).read_text()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(bpe), bos_token=bos, eos_token=eos,
                                               extra_special_tokens={f"t{i}": t for i, t in enumerate(extra)})
    tok.chat_template = template
    folder = getattr(checkpoints, arch)(tmp_path_factory.mktemp(arch) / "ckpt", vocab_size=len(tok),
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                        max_position_embeddings=512)
    tok.save_pretrained(folder)
    assert (folder / "chat_template.jinja").read_text() == template
    return folder


def test_each_architecture_wraps_the_prompt_as_apply_chat_template(arch_ckpt):
    text, ids = chat_ids_of(arch_ckpt)
    wrapped, n = answer(arch_ckpt, max_tokens=MAX_TOKENS)
    assert n == len(ids)  # the prompt is the rendered conversation, token for token
    assert answer(arch_ckpt, text, PromptTemplates(), max_tokens=MAX_TOKENS)[0] == wrapped
    assert answer(arch_ckpt, templates=PromptTemplates(), max_tokens=MAX_TOKENS)[0] != wrapped


def test_each_architecture_wraps_in_the_c_api_as_in_python(program, arch_ckpt, tmp_path):
    """The converter's GGUF carries the template; MediaPipe's C API on it wraps the prompt as the folder's."""
    from tests.genai.test_c_api import run_c, run_python

    model = convert_checkpoint(ConversionConfig(str(arch_ckpt), "safetensors", None, "cpu", str(tmp_path),
                                                is_quantized=False))
    turns = (QUESTION, "-")
    rc, got = run_c(program, model, max_tokens=MAX_TOKENS, turns=turns)
    assert rc == 0, got
    want = run_python(model, max_tokens=MAX_TOKENS, turns=turns)
    # a reply of whitespace only (the tiny Gemma 3 and Qwen3 write newlines) comes back stripped from the Python
    # API, as on Android, and raw from the C API; the same template on Llama's architecture compares it in full
    assert {k: got[k].strip() for k in want} == {k: v.strip() for k, v in want.items()}
    assert want["SYNC1"] == answer(arch_ckpt, max_tokens=MAX_TOKENS)[0]
