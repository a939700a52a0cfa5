"""What a user must see about the files LiteRT runs before shipping one: a
.task with MediaPipe's bytes-to-unicode mapping runs as MediaPipe's runtime
runs it (with a warning that LiteRT-LM garbles it), a bare .tflite takes the
tokenizer beside it, the KV cache length fixed in the file is reported, and
what cannot run is refused saying why."""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.errors import ModelFileError
from pocketlm.model.litert_model import LiteRTBundleWarning
from pocketlm.tasks.llm_inference_session import PromptTemplates
from tests.fixtures.litert import FIXTURES_JSON, FOLDER

RECORDED = json.loads(FIXTURES_JSON.read_text())["files"]


def raw_greedy(path, prompt, max_tokens, **kw):
    opts = LlmInferenceOptions.builder().setModelPath(str(path)).setMaxTokens(max_tokens).build()
    with LlmInference.createFromOptions(None, opts, **kw) as llm:
        s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1)
                                                  .setPromptTemplates(PromptTemplates()).build())
        s.addQueryChunk(prompt)
        return s.generateResponse()


needs_runtime = pytest.mark.skipif(__import__("importlib").util.find_spec("litert_lm") is None,
                                   reason="the LiteRT runtime (pip install pocketlm[litert])")


@needs_runtime
def test_a_bytes_to_unicode_task_runs_as_mediapipe_runs_it_and_warns():
    task, litertlm = FOLDER / "llama-bpe-int8.task", FOLDER / "llama-bpe-int8.litertlm"
    prompt = "Hello world"
    with pytest.warns(LiteRTBundleWarning, match="LiteRT-LM ignores it"):
        got = raw_greedy(task, prompt, 40)
    # the same graph behind the .litertlm's own tokenizer.json: the same text
    assert got == raw_greedy(litertlm, prompt, 40)
    # while LiteRT-LM, ignoring the mapping, answered this bundle with other text
    garbled = RECORDED[task.name]["litert_lm"]["prompts"][0]
    assert garbled["prompt"] == prompt and garbled["session"].lstrip() != got


@needs_runtime
def test_a_bare_tflite_takes_the_tokenizer_beside_it_or_the_one_named():
    rec = RECORDED["llama-tiny-int8.litertlm"]["litert_lm"]["prompts"][0]  # the same graph and tokenizer
    n = len(rec["prompt_ids"]) + 32
    assert raw_greedy(FOLDER / "llama-tiny-int8.tflite", rec["prompt"], n) == rec["session"].lstrip()
    named = raw_greedy(FOLDER / "llama-tiny-int8.tflite", rec["prompt"], n,
                       tokenizer=str(FOLDER / "llama-tiny.tokenizer.model"))
    assert named == rec["session"].lstrip()


@needs_runtime
def test_the_cli_generates_from_a_tflite_with_its_tokenizer():
    from pocketlm.cli import main

    rec = RECORDED["llama-tiny-int8.litertlm"]["litert_lm"]["prompts"][0]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(["generate", "--model", str(FOLDER / "llama-tiny-int8.tflite"), "--tokenizer",
              str(FOLDER / "llama-tiny.tokenizer.model"), "--raw", "--temperature", "0", "--top-k", "1",
              "--max-tokens", str(len(rec["prompt_ids"]) + 32), rec["prompt"]])
    assert out.getvalue().rstrip("\n") == rec["session"].lstrip().rstrip("\n")
    # maxTokens below the graph's 256-position cache: the run still pays for the whole cache, and says so
    assert "256" in err.getvalue() and "KV cache" in err.getvalue()


def test_a_tflite_without_a_tokenizer_is_refused_naming_what_to_give(tmp_path):
    lonely = tmp_path / "model.tflite"
    lonely.write_bytes((FOLDER / "llama-tiny-int8.tflite").read_bytes())
    from pocketlm.model.loader import load_model

    with pytest.raises(ModelFileError, match=r"carries no tokenizer.*--tokenizer"):
        load_model(lonely)


def test_a_whole_generation_graph_is_read_for_tensorflows_interpreter():
    # tests/litert/test_litert_tf.py runs it, or refuses it saying what to install
    from pocketlm.model.loader import load_model
    from pocketlm.model.tflite_generation import WholeGenerationGraph

    graph, tokenizer, _ = load_model(FOLDER / "gpt2-keras-int8.tflite")
    assert isinstance(graph, WholeGenerationGraph) and graph.signature == "serving_default" and tokenizer is None


def test_without_the_runtime_a_litert_file_is_refused_saying_what_to_install(monkeypatch):
    import importlib.util

    from pocketlm.engine import litert

    monkeypatch.delenv("POCKETLM_LITERT_LIB", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "litert_lm" else real(name, *a))
    with pytest.raises(ModelFileError, match=r"pip install 'pocketlm\[litert\]'"):
        litert.litert_library()


@needs_runtime
def test_running_a_file_writes_nothing_beside_it():
    before = sorted(p.name for p in FOLDER.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LiteRTBundleWarning)
        for name in ("llama-tiny-int8.litertlm", "llama-tiny-int8.task", "llama-bpe-int8.task"):
            raw_greedy(FOLDER / name, "Hello world", 40)
    assert sorted(p.name for p in FOLDER.iterdir()) == before
