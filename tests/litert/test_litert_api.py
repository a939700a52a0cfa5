"""The files phones run (.litertlm, TFLite .task, .tflite) through MediaPipe's
API on LiteRT's own kernels: greedy text equal to what LiteRT-LM itself
answers for the same file and prompt (tests/fixtures/litert/fixtures.json,
recorded from litert_lm 0.18.1 and checked there against a plain loop over
the graph's signatures), the API's semantics on top (sessions, clone,
cancel, maxTokens, seeds), and the refusals a user must see."""

from __future__ import annotations

import json
import threading

import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.tasks.llm_inference_session import PromptTemplates
from tests.fixtures.litert import FIXTURES_JSON, FOLDER

pytest.importorskip("litert_lm", reason="the LiteRT runtime (pip install pocketlm[litert])")
RECORDED = json.loads(FIXTURES_JSON.read_text())["files"]
LITERT_FILES = ["llama-tiny-int8.litertlm", "llama-tiny-f32.litertlm", "llama-bpe-int8.litertlm",
                "llama-tiny-int8.task"]
OUT = 32  # output tokens of each recorded answer


def options(path, max_tokens, **kw):
    b = LlmInferenceOptions.builder().setModelPath(str(path)).setMaxTokens(max_tokens)
    for k, v in kw.items():
        getattr(b, "set" + k[0].upper() + k[1:])(v)
    return b.build()


def raw_session(llm, top_k=1, **kw):
    b = LlmInferenceSessionOptions.builder().setTopK(top_k).setPromptTemplates(PromptTemplates())
    for k, v in kw.items():
        getattr(b, "set" + k[0].upper() + k[1:])(v)
    return LlmInferenceSession.createFromOptions(llm, b.build())


@pytest.mark.parametrize("name", LITERT_FILES)
def test_greedy_text_is_litert_lms(name):
    for rec in RECORDED[name]["litert_lm"]["prompts"]:
        # litert_lm's Session: [start] + the prompt's tokens, then 32 tokens sampled with top_k 1
        with LlmInference.createFromOptions(None, options(FOLDER / name, len(rec["prompt_ids"]) + OUT)) as llm:
            s = raw_session(llm)
            s.addQueryChunk(rec["prompt"])
            assert s.sizeInTokens(rec["prompt"]) == len(rec["prompt_ids"]) - 1
            text = s.generateResponse()
        # the Python API strips a response's leading whitespace, as Android does
        assert text == rec["session"].lstrip(), rec["prompt"]


@pytest.mark.parametrize("name", [n for n in LITERT_FILES if "session_templated_ids" in RECORDED[n]["litert_lm"]["prompts"][0]])
def test_templated_session_is_litert_lms(name):
    # litert_lm's Session with the file's prompt template: [start] + tokens of (prefix + prompt) + tokens of the
    # suffix; the prefix tokenized apart from the prompt would start it with a SentencePiece word boundary
    for rec in RECORDED[name]["litert_lm"]["prompts"]:
        ids = rec["session_templated_ids"]
        with LlmInference.createFromOptions(None, options(FOLDER / name, len(ids) + OUT)) as llm:
            s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())
            s.addQueryChunk(rec["prompt"])
            text = s.generateResponse()
            assert s.last_stats.prefill_tokens == len(ids)
            assert s._session.tokens[: len(ids)] == ids, rec["prompt"]
        assert text == rec["session_templated"].lstrip(), rec["prompt"]


@pytest.mark.parametrize("name", ["llama-tiny-int8.litertlm", "llama-tiny-int8.task"])
def test_the_files_turn_template_wraps_the_prompt(name):
    # the .litertlm's Jinja template and the .task's prompt prefix / suffix: "[INST] ... [/INST]"
    rec = RECORDED[name]["litert_lm"]["prompts"][0]
    with LlmInference.createFromOptions(None, options(FOLDER / name, 64)) as llm:
        wrapped = llm.generateResponse(rec["prompt"])
        raw = raw_session(llm)
        raw.addQueryChunk(rec["prompt"])
        assert wrapped != raw.generateResponse()
        s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())
        s.addQueryChunk(rec["prompt"])
        s.generateResponse()
        assert s.last_stats.prefill_tokens > len(rec["prompt_ids"]) + 10  # [INST] and [/INST] were prefilled


def test_clone_and_seeds():
    path = FOLDER / "llama-tiny-int8.litertlm"
    with LlmInference.createFromOptions(None, options(path, 200)) as llm:
        s = raw_session(llm, top_k=40, temperature=0.8, randomSeed=3)
        s.addQueryChunk("Hello world")
        c = s.cloneSession()  # the same prompt, cache and random state
        first = s.generateResponse()
        assert c.generateResponse() == first
        again = raw_session(llm, top_k=40, temperature=0.8, randomSeed=3)
        again.addQueryChunk("Hello world")
        assert again.generateResponse() == first  # a seed gives the same text
        other = raw_session(llm, top_k=40, temperature=0.8, randomSeed=4)
        other.addQueryChunk("Hello world")
        assert other.generateResponse() != first


def test_sessions_across_turns():
    path = FOLDER / "llama-tiny-int8.litertlm"
    with LlmInference.createFromOptions(None, options(path, 256)) as llm:
        s = raw_session(llm)
        s.addQueryChunk("Hello world")
        calls = []

        def listener(partial, done):  # the tiny model never ends a turn: the first one is cut short
            calls.append(partial)
            if len(calls) == 1 and not done:
                s.cancelGenerateResponseAsync()

        s.generateResponseAsync(listener).result(30)
        assert s.last_stats.stop_reason == "cancelled"
        s.addQueryChunk(" again")
        assert s.generateResponse()
        # the second turn prefills its own tokens (and the first turn's last), not the conversation again
        assert s.last_stats.prefill_tokens in (llm.sizeInTokens(" again"), llm.sizeInTokens(" again") + 1)


def test_max_tokens_above_the_files_cache_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"1024.*256|256.*1024"):
        LlmInference.createFromOptions(None, options(FOLDER / "llama-tiny-int8.litertlm", 1024))


def test_max_tokens_reached_and_cancel():
    path = FOLDER / "llama-tiny-f32.litertlm"
    with LlmInference.createFromOptions(None, options(path, 40)) as llm:
        s = raw_session(llm)
        s.addQueryChunk("Hello world")
        s.generateResponse()
        assert s.last_stats.stop_reason == "max_tokens" and s.last_stats.decode_tokens == 40 - 3
    with LlmInference.createFromOptions(None, options(path, 256)) as llm:
        s = raw_session(llm)
        s.addQueryChunk("Hello world")
        got = []
        started, sent = threading.Event(), threading.Event()

        def listener(partial, done):  # holds the generation until this thread has asked to cancel
            got.append(partial)
            started.set()
            sent.wait(30)

        future = s.generateResponseAsync(listener)
        assert started.wait(30)
        s.cancelGenerateResponseAsync()  # from another thread than the generation's
        sent.set()
        future.result(30)
        assert s.last_stats.stop_reason == "cancelled" and s.last_stats.decode_tokens < 256 - 3


# -- MediaPipe's C API and the JVM bridge, over the same executor ----------------------


@pytest.fixture
def litert_lib(monkeypatch):
    """C programs find LiteRT's library where the Python package has it."""
    from pocketlm.engine.litert import litert_library

    monkeypatch.setenv("POCKETLM_LITERT_LIB", litert_library())


def test_the_c_api_runs_a_litertlm_as_litert_lm_does(program, litert_lib):
    from tests.genai.test_c_api import run_c

    # no turn template here: the file's Jinja template is no family C recognises, so the prompt goes as is
    name = "llama-tiny-int8.litertlm"
    rec = RECORDED[name]["litert_lm"]["prompts"][0]
    rc, got = run_c(program, FOLDER / name, max_tokens=len(rec["prompt_ids"]) + OUT, turns=(rec["prompt"], "-"))
    assert rc == 0, got
    assert got["SYNC1"] == rec["session"] and got["ASYNC2"] == rec["session"]  # the clone answers the same
    assert got["SIZE"] == str(len(rec["prompt_ids"]) - 1)


@pytest.mark.parametrize("sampling", [dict(top_k=1, temperature=0.0), dict(top_k=40, temperature=0.8, seed=7)],
                         ids=["greedy", "sampled"])
def test_the_c_api_answers_a_tflite_task_as_the_python_api(program, litert_lib, sampling):
    from tests.genai.test_c_api import run_c, run_python

    path, turns = FOLDER / "llama-tiny-int8.task", ("Hello world", "-")
    rc, got = run_c(program, path, max_tokens=64, turns=turns, **sampling)
    assert rc == 0, got
    want = run_python(path, max_tokens=64, turns=turns, **sampling)
    assert {k: v if k == "SIZE" else v.lstrip() for k, v in got.items() if k in want} == want


def test_the_c_api_refuses_a_bare_tflite_saying_what_to_do(program):
    from tests.genai.test_c_api import run_c

    rc, got = run_c(program, FOLDER / "llama-tiny-int8.tflite", max_tokens=40, turns=("Hello", "-"))
    assert rc != 0 and "carries no tokenizer" in got["ERROR"] and "--tokenizer" in got["ERROR"]
