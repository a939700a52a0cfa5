"""LlmInference and LlmInferenceOptions through the public API only."""

import dataclasses
import math
import threading

import pytest
from pocketlm import (
    Backend,
    IllegalStateError,
    LlmInference,
    LlmInferenceOptions,
    LlmInferenceSessionOptions,
    PromptTooLongError,
    kernels,
)

from tests.tasks.conftest import PROMPT


def options(path, **kw):
    b = LlmInferenceOptions.builder().setModelPath(str(path))
    for name, value in kw.items():
        getattr(b, "set" + name[0].upper() + name[1:])(value)
    return b.build()


def test_defaults_are_mediapipes(model_dir):
    o = LlmInferenceOptions.builder().setModelPath(str(model_dir)).build()
    assert (o.maxTokens(), o.topK(), o.maxTopK(), o.temperature, o.randomSeed()) == (512, 40, 40, 0.8, 0)
    assert o.loraPath() is None and o.resultListener() is None and o.errorListener() is None
    assert o.preferredBackend() is Backend.DEFAULT
    s = LlmInferenceSessionOptions.builder().build()
    assert (s.topK(), s.topP(), s.temperature, s.randomSeed(), s.loraPath()) == (40, 1.0, 0.8, 0, None)


def test_options_are_immutable_and_builders_independent(model_dir):
    b = LlmInferenceOptions.builder().setModelPath(str(model_dir)).setMaxTokens(100)
    o = b.build()
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.max_tokens = 5
    b.setMaxTokens(7)
    assert o.maxTokens() == 100 and b.build().maxTokens() == 7
    assert o.toBuilder().setTopK(3).build().topK() == 3 and o.topK() == 40
    assert LlmInferenceOptions(model_path=str(model_dir), max_tokens=100) == o  # the keyword constructor


@pytest.mark.parametrize("kw,name", [
    (dict(maxTokens=-1), "maxTokens"), (dict(maxTokens=0), "maxTokens"), (dict(topK=0), "topK"),
    (dict(maxTopK=-3), "topK"), (dict(temperature=math.nan), "temperature"), (dict(temperature=-0.5), "temperature"),
    (dict(randomSeed="seven"), "randomSeed"), (dict(resultListener="print"), "resultListener"),
    (dict(errorListener=3), "errorListener"), (dict(preferredBackend="tpu"), "preferredBackend"),
    (dict(loraPath="/no/such/lora.bin"), "loraPath")])
def test_each_bad_option_is_a_value_error_naming_it(model_dir, kw, name):
    with pytest.raises(ValueError, match=name):
        options(model_dir, **kw)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="modelPath.*does not exist"):
        LlmInferenceOptions.builder().setModelPath(str(tmp_path / "nope.task")).build()
    with pytest.raises(ValueError, match="modelPath must be set"):
        LlmInferenceOptions.builder().build()


def test_backend_is_recorded(model_dir):
    assert options(model_dir, preferredBackend=LlmInference.Backend.GPU).preferredBackend() is Backend.GPU


def test_same_seed_same_text_and_another_seed_differs(model_dir):
    with LlmInference.createFromOptions(None, options(model_dir, maxTokens=48, randomSeed=5)) as llm:
        a, b = llm.generateResponse(PROMPT), llm.generateResponse(PROMPT)
    with LlmInference.createFromOptions(None, options(model_dir, maxTokens=48, randomSeed=6)) as llm:
        c = llm.generateResponse(PROMPT)
    assert a == b and a != c and len(a) > 0


@pytest.fixture
def backend_restored():
    before = kernels.active_backend().name.rsplit(".", 1)[-1]
    yield
    kernels.set_backend({"numba_kernels": "numba"}.get(before, before))


@pytest.mark.parametrize("other", ["numba", "reference"])
def test_same_seed_same_text_across_backends(model_dir, backend_restored, other):
    kernels.set_backend("native")
    with LlmInference.createFromOptions(None, options(model_dir, maxTokens=40, randomSeed=3)) as llm:
        native = llm.generateResponse(PROMPT)
    kernels.set_backend(other)
    with LlmInference.createFromOptions(None, options(model_dir, maxTokens=40, randomSeed=3)) as llm:
        assert llm.generateResponse(PROMPT) == native


def test_async_partials_concatenate_in_order_and_end_with_done(model_dir):
    calls = []
    o = options(model_dir, maxTokens=48, resultListener=lambda partial, done: calls.append((partial, done,
                                                                                            threading.current_thread())))
    with LlmInference.createFromOptions(None, o) as llm:
        sync = llm.generateResponse(PROMPT)
        future = llm.generateResponseAsync(PROMPT)
        text = future.result(timeout=60)
        future.join()
    assert text == sync == "".join(p for p, _, _ in calls)
    assert [d for _, d, _ in calls] == [False] * (len(calls) - 1) + [True]
    assert all(p for p, d, _ in calls if not d)  # no empty partial results
    assert calls[0][0] == calls[0][0].lstrip()  # the first has its leading whitespace stripped
    assert all(t is not threading.main_thread() for _, _, t in calls)  # delivered from a worker thread


def test_progress_listener_argument_overrides_the_options_listener(model_dir):
    got = []
    with LlmInference.createFromOptions(None, options(model_dir, maxTokens=32)) as llm:
        text = llm.generateResponseAsync(PROMPT, lambda p, d: got.append(p)).result(timeout=60)
    assert "".join(got) == text


def test_generation_reaching_max_tokens_ends_normally(model_dir):
    calls = []
    with LlmInference.createFromOptions(None, options(model_dir, maxTokens=20, topK=1)) as llm:
        n_prompt = llm.sizeInTokens(PROMPT) + 1  # + BOS
        text = llm.generateResponseAsync(PROMPT, lambda p, d: calls.append(d)).result(timeout=60)
        stats = llm.last_stats
    assert calls[-1] is True and text
    assert stats.stop_reason == "max_tokens" and n_prompt + stats.decode_tokens == 20


def test_prompt_longer_than_max_tokens_is_an_error_before_any_work(model_dir):
    listener_calls = []
    o = options(model_dir, maxTokens=8, resultListener=lambda p, d: listener_calls.append(p))
    with LlmInference.createFromOptions(None, o) as llm:
        with pytest.raises(PromptTooLongError, match="maxTokens is 8"):
            llm.generateResponse(PROMPT * 3)
        with pytest.raises(PromptTooLongError):
            llm.generateResponseAsync(PROMPT * 3)
        assert llm.last_stats.prefill_tokens == 0 and listener_calls == []
        assert llm.generateResponse("a")  # still usable


def test_generate_after_close_is_an_illegal_state(model_dir):
    llm = LlmInference.createFromOptions(None, options(model_dir, maxTokens=16))
    llm.close()
    for call in (lambda: llm.generateResponse("x"), lambda: llm.generateResponseAsync("x"),
                 lambda: llm.sizeInTokens("x")):
        with pytest.raises(IllegalStateError, match="closed"):
            call()
    llm.close()  # a second close is harmless


def _blocking_listener():
    started, release = threading.Event(), threading.Event()

    def listener(partial, done):
        started.set()
        release.wait(30)

    return listener, started, release


def test_second_async_generation_while_one_runs_is_an_error_not_a_hang(model_dir):
    listener, started, release = _blocking_listener()
    with LlmInference.createFromOptions(None, options(model_dir, maxTokens=24, resultListener=listener)) as llm:
        first = llm.generateResponseAsync(PROMPT)
        assert started.wait(30)
        with pytest.raises(IllegalStateError, match="still processing"):
            llm.generateResponseAsync(PROMPT)
        with pytest.raises(IllegalStateError):
            llm.generateResponse(PROMPT)
        release.set()
        assert first.result(timeout=60)
        first.join()
        assert llm.generateResponse(PROMPT)  # free again once done


def test_error_inside_the_users_listener_reaches_error_listener_and_future(model_dir):
    errors = []

    def listener(partial, done):
        raise RuntimeError("listener broke")

    o = options(model_dir, maxTokens=24, resultListener=listener, errorListener=errors.append)
    with LlmInference.createFromOptions(None, o) as llm:
        future = llm.generateResponseAsync(PROMPT)
        with pytest.raises(RuntimeError, match="listener broke"):
            future.result(timeout=60)
        future.join(10)
        assert not future.thread.is_alive()
        assert len(errors) == 1 and str(errors[0]) == "listener broke"
        assert llm.generateResponse(PROMPT)  # the lock was released


def test_a_failing_error_listener_does_not_hang_the_handle(model_dir):
    def bad(e):
        raise ValueError("error listener broke too")

    o = options(model_dir, maxTokens=24, resultListener=lambda p, d: 1 / 0, errorListener=bad)
    with LlmInference.createFromOptions(None, o) as llm:
        with pytest.raises(ZeroDivisionError):
            llm.generateResponseAsync(PROMPT).result(timeout=60)


def test_close_stops_a_running_generation_and_its_thread(model_dir):
    listener, started, release = _blocking_listener()
    llm = LlmInference.createFromOptions(None, options(model_dir, maxTokens=400, resultListener=listener))
    future = llm.generateResponseAsync(PROMPT)
    assert started.wait(30)
    release.set()
    llm.close()
    assert future.done() and not future.thread.is_alive()


def test_size_in_tokens_counts_the_text_only(model_dir):
    with LlmInference.createFromOptions(None, options(model_dir)) as llm:
        assert llm.sizeInTokens("") == 0
        assert llm.sizeInTokens(PROMPT) == len(llm.engine.tokenizer.encode(PROMPT))
        assert llm.sizeInTokens(PROMPT + " " + PROMPT) > llm.sizeInTokens(PROMPT)


def test_context_and_lora_are_checked_at_creation(model_dir, tmp_path):
    with pytest.raises(TypeError, match="context"):
        LlmInference.createFromOptions(object(), options(model_dir))
    lora = tmp_path / "adapter.safetensors"
    lora.write_bytes(b"\0")
    with pytest.raises(ValueError, match="no adapter_config.json beside the adapter weights"):
        LlmInference.createFromOptions(None, options(model_dir, loraPath=str(lora)))
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4, "lora_alpha": 8}')
    with pytest.raises(ValueError, match="adapter.safetensors"):  # a corrupt weights file is named
        LlmInference.createFromOptions(None, options(model_dir, loraPath=str(lora)))


BROKEN = "ab\ud800c"  # a lone high surrogate at index 2, as a broken Java or JavaScript string can hold


@pytest.mark.parametrize("call", ["generateResponse", "generateResponseAsync", "sizeInTokens"])
def test_a_lone_surrogate_is_refused_naming_its_index_and_code_point(model_dir, call):
    errors = []
    with LlmInference.createFromOptions(None, options(model_dir, maxTokens=64, errorListener=errors.append)) as llm:
        name = "text" if call == "sizeInTokens" else "inputText"
        for text, cp, at in [(BROKEN, "D800", 2), ("\udfff", "DFFF", 0), ("日本\udc00", "DC00", 2)]:
            with pytest.raises(ValueError, match=rf"^{name}: lone surrogate U\+{cp} at index {at} is not valid "
                                                 r"text \(a broken UTF-16 string\?\)$") as e:
                getattr(llm, call)(text)
            assert type(e.value) is ValueError  # not a UnicodeEncodeError from the tokenizer
        # a pair of surrogates is not the character they stand for in a Python str: refused, saying which one
        with pytest.raises(ValueError, match=r"surrogate pair U\+D83D U\+DCF1 at index 1 .* holds U\+1F4F1 as one"):
            getattr(llm, call)("a\ud83d\udcf1")
        assert not errors and not llm.engine.busy.locked()  # refused in the caller's thread, before any work
        valid = "a phone \U0001f4f1, 日本"  # emoji and CJK are text
        got = getattr(llm, call)(valid)
        if call == "sizeInTokens":
            assert got == len(llm.engine.tokenizer.encode(valid))
        elif call == "generateResponseAsync":
            assert isinstance(got.result(timeout=120), str)
        else:
            assert isinstance(got, str)
    assert not errors


def test_a_gpu_backend_is_recorded_and_says_so(model_dir):
    import warnings

    from pocketlm.tasks.llm_inference import Backend

    opts = options(model_dir, preferredBackend=Backend.GPU)
    assert opts.preferredBackend() is Backend.GPU
    with pytest.warns(RuntimeWarning, match="preferredBackend GPU is recorded only: pocketlm runs the model on the CPU"):
        LlmInference.createFromOptions(None, opts).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # CPU and DEFAULT say nothing
        for b in (Backend.CPU, Backend.DEFAULT):
            LlmInference.createFromOptions(None, options(model_dir, preferredBackend=b)).close()
    with pytest.raises(ValueError, match="preferredBackend must be one of"):
        options(model_dir, preferredBackend="npu")
