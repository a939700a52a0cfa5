"""A whole-generation .tflite (one serving_default signature, string prompt in,
text out, select TF and TF Text ops: keras-hub's GPT-2 as TensorFlow Lite's
GPT-2 Android example exports it) through the MediaPipe API and the CLI, on
TensorFlow's own tf.lite.Interpreter with its Flex delegate: the text is what
that interpreter answers for the same prompt, and what the graph cannot do
is refused by name.

TensorFlow 2.19 is the last whose tf.lite.Interpreter links the Flex
delegate, and it pins numpy<2.2 and protobuf<6, which the test environment's
litert-lm-builder refuses; so the tests that run the graph skip where
TensorFlow and TensorFlow Text are not installed (run them in an environment
with `pip install 'pocketlm[litert-tf]'`). The file's reading and every
refusal are tested everywhere."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import types

import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.errors import ModelFileError
from pocketlm.tasks.llm_inference_session import PromptTemplates
from tests.fixtures.litert import FIXTURES_JSON, FOLDER, GPT2_KERAS

GPT2 = FOLDER / "gpt2-keras-int8.tflite"
RECORDED = json.loads(FIXTURES_JSON.read_text())["files"][GPT2.name]
LENGTH = GPT2_KERAS["sequence_length"]


def _tf_runs() -> tuple[bool, str]:
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tensorflow_text") is None:
        return False, "TensorFlow 2.19 and TensorFlow Text are not installed (pip install 'pocketlm[litert-tf]')"
    import tensorflow as tf

    major, minor = (int(x) for x in tf.__version__.split(".")[:2])
    if (major, minor) >= (2, 20):
        return False, f"TensorFlow {tf.__version__}'s tf.lite.Interpreter links no Flex delegate"
    return True, ""


TF_RUNS, WHY = _tf_runs()
needs_tf = pytest.mark.skipif(not TF_RUNS, reason=WHY)


def options(max_tokens=LENGTH, temperature=0.0, top_k=40):
    return (LlmInferenceOptions.builder().setModelPath(str(GPT2)).setMaxTokens(max_tokens).setTopK(top_k)
            .setTemperature(temperature).build())


def interpreter_text(prompt: str) -> str:
    """What TensorFlow's interpreter answers, driven directly."""
    import numpy as np
    import tensorflow_text  # noqa: F401  (registers the TF Text ops)
    import tensorflow as tf

    runner = tf.lite.Interpreter(model_path=str(GPT2)).get_signature_runner("serving_default")
    return runner(prompt=np.array(prompt.encode("utf-8")))["output_0"].item().decode("utf-8")


# -- reading, everywhere -----------------------------------------------------------


def test_the_graph_is_read_as_one_whole_generation_signature_of_its_length_and_sampler():
    from pocketlm.model.loader import load_model
    from pocketlm.model.tflite_generation import WholeGenerationGraph

    g, tok, meta = load_model(GPT2)
    assert isinstance(g, WholeGenerationGraph) and tok is None and meta == {}
    sig = RECORDED["signatures"]["serving_default"]
    assert (g.signature, g.input, g.output) == ("serving_default", *sig["inputs"], *sig["outputs"])
    assert g.length == LENGTH  # the sequence_length keras-hub generated to
    assert g.sampler == "greedy" and g.sampler_ops == ["ARG_MAX"]
    assert "RegexSplitWithOffsets" in g.tf_text_ops


def test_a_graph_without_a_generation_loop_is_refused_by_name(monkeypatch):
    from pocketlm.model import tflite_generation
    from pocketlm.model.tflite_file import read_tflite

    monkeypatch.setattr(tflite_generation, "_loop_lengths", lambda *a: set())
    with pytest.raises(ModelFileError, match=r"serving_default: no generation loop.*cannot tell how many tokens"):
        tflite_generation.read_whole_generation(str(GPT2), read_tflite(GPT2))


def test_without_tensorflow_the_graph_is_refused_saying_what_to_install(monkeypatch):
    for name in ("tensorflow", "tensorflow_text"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
    with pytest.raises(ModelFileError, match=r"serving_default.*tensorflow-text 2\.19: pip install "
                                             r"'pocketlm\[litert-tf\]'"):
        LlmInference.createFromOptions(None, options())


def test_a_tensorflow_without_the_flex_delegate_is_refused_naming_its_version(monkeypatch):
    class Interpreter:  # what TensorFlow 2.20+ answers for a model with select TF ops
        def __init__(self, model_path):
            pass

        def allocate_tensors(self):
            raise RuntimeError("Select TensorFlow op(s), included in the given model, is(are) not supported by "
                               "this interpreter. Make sure you apply/link the Flex delegate before inference.")

    tf = types.SimpleNamespace(__version__="2.21.0", lite=types.SimpleNamespace(Interpreter=Interpreter))
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    monkeypatch.setitem(sys.modules, "tensorflow_text", types.ModuleType("tensorflow_text"))
    with pytest.raises(ModelFileError, match=r"TensorFlow 2\.21\.0's tf\.lite\.Interpreter has no Flex delegate"):
        LlmInference.createFromOptions(None, options())


def test_a_maxtokens_other_than_the_graphs_length_is_refused_naming_both():
    for n in (512, LENGTH - 1):
        with pytest.raises(ValueError, match=rf"maxTokens {n}, but signature serving_default always generates up "
                                             rf"to the {LENGTH} positions"):
            LlmInference.createFromOptions(None, options(max_tokens=n))


def test_a_device_context_is_refused_by_name():
    from pocketlm import device

    with pytest.raises(ValueError, match="device context is not modelled for a whole-generation graph"):
        LlmInference.createFromOptions(device.context("pixel_8"), options())


# -- running, on TensorFlow's interpreter --------------------------------------------


@needs_tf
@pytest.mark.parametrize("i", range(len(RECORDED["answers"])))
def test_the_text_is_what_tensorflows_interpreter_answers(i):
    rec = RECORDED["answers"][i]
    direct = interpreter_text(rec["prompt"])
    assert direct == rec["text"]  # the interpreter answers what was recorded when the file was made
    with LlmInference.createFromOptions(None, options()) as llm:
        got = llm.generateResponse(rec["prompt"])
    # the answer is what the graph writes after the prompt (MediaPipe strips the first piece's leading space)
    assert direct.startswith(rec["prompt"]) and got == direct[len(rec["prompt"]):].lstrip()
    assert got


@needs_tf
def test_the_cli_generates_the_same_text():
    from pocketlm.cli import main

    rec = RECORDED["answers"][0]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(["generate", "--model", str(GPT2), "--max-tokens", str(LENGTH), "--temperature", "0", rec["prompt"]])
    assert out.getvalue() == rec["text"][len(rec["prompt"]):].lstrip() + "\n"
    assert "arrives as one piece" in err.getvalue()


@needs_tf
def test_streaming_delivers_the_whole_text_as_one_chunk():
    rec = RECORDED["answers"][1]
    parts = []
    with LlmInference.createFromOptions(None, options()) as llm:
        future = llm.generateResponseAsync(rec["prompt"], lambda p, done: parts.append((p, done)))
        text = future.result()
        future.join()
    assert text == rec["text"][len(rec["prompt"]):].lstrip()
    assert parts == [(text, False), ("", True)]


@needs_tf
def test_a_session_sends_the_whole_conversation_and_clones_it():
    from pocketlm import PromptTooLongError

    rec = RECORDED["answers"][1]
    with LlmInference.createFromOptions(None, options()) as llm:
        s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())
        s.addQueryChunk("Hello")
        fork = s.cloneSession()
        s.addQueryChunk(" world")  # chunks are one prompt
        assert s.generateResponse() == rec["text"][len("Hello world"):].lstrip()
        fork.addQueryChunk(" world")
        assert fork.generateResponse() == rec["text"][len("Hello world"):].lstrip()
        # the next turn sends the conversation so far with it: here the first answer filled the graph's
        # positions, so the graph cuts it, and the turn is refused, the session keeping what it held
        s.addQueryChunk(" the")
        with pytest.raises(PromptTooLongError, match=rf"\({len(rec['text'] + ' the')} characters\)"):
            s.generateResponse()
        assert s._session.text == rec["text"] and s._session.pending_text == ""
        # session templates go in as text
        t = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1)
                                                  .setPromptTemplates(PromptTemplates(user_prefix="the ")).build())
        t.addQueryChunk("model runs")
        assert t.generateResponse() == RECORDED["answers"][0]["text"][len("the model runs"):].lstrip()


@needs_tf
def test_a_sampler_other_than_the_graphs_is_refused_by_name():
    with LlmInference.createFromOptions(None, options(temperature=0.8)) as llm:
        with pytest.raises(ValueError, match=r"samples greedily inside the graph \(ARG_MAX\); topK 40 with "
                                             r"temperature 0\.8 cannot be applied"):
            llm.generateResponse("Hello world")
        with pytest.raises(ValueError, match="samples greedily"):
            LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(10).build())
        # topK 1 is greedy whatever the temperature, and the seed changes nothing then
        s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1)
                                                  .setRandomSeed(5).build())
        s.addQueryChunk("Hello world")
        assert s.generateResponse() == RECORDED["answers"][1]["text"][len("Hello world"):].lstrip()


@needs_tf
def test_a_prompt_the_graph_cuts_is_refused():
    from pocketlm import PromptTooLongError

    with LlmInference.createFromOptions(None, options()) as llm:
        with pytest.raises(PromptTooLongError, match=rf"does not begin with the prompt.*its {LENGTH} positions"):
            llm.generateResponse(" ".join(["the model runs"] * 12))


@needs_tf
def test_size_in_tokens_needs_the_tokenizer_named(tmp_path):
    from tests.fixtures.tokenizers import train_byte_level_bpe

    with LlmInference.createFromOptions(None, options()) as llm:
        with pytest.raises(ValueError, match=r"tokenizes inside its whole-generation signature.*--tokenizer"):
            llm.sizeInTokens("Hello world")
    train_byte_level_bpe(tmp_path, vocab_size=400)  # the BPE the graph's tokenizer was made from
    rec = RECORDED["answers"][0]
    with LlmInference.createFromOptions(None, options(), tokenizer=str(tmp_path / "tokenizer.json")) as llm:
        # the graph filled all its positions but the start token it puts first
        assert llm.sizeInTokens(rec["text"]) == LENGTH - 1
        llm.generateResponse(rec["prompt"])
        assert llm.last_stats.prefill_tokens == llm.sizeInTokens(rec["prompt"])
