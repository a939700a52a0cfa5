"""LlmInferenceSession through the public API only: turns, KV reuse, clones,
cancellation, option updates, templates, stop tokens."""

import threading

import pytest
from pocketlm import (
    IllegalStateError,
    LlmInference,
    LlmInferenceOptions,
    LlmInferenceSession,
    LlmInferenceSessionOptions,
    PromptTemplates,
    PromptTooLongError,
)

from tests.tasks.conftest import PROMPT

RAW = PromptTemplates()  # text goes to the model exactly as given


def llm_for(path, max_tokens=128, **kw):
    b = LlmInferenceOptions.builder().setModelPath(str(path)).setMaxTokens(max_tokens)
    for k, v in kw.items():
        getattr(b, "set" + k[0].upper() + k[1:])(v)
    return LlmInference.createFromOptions(None, b.build())


def session(llm, top_k=1, templates=RAW, **kw):
    b = LlmInferenceSessionOptions.builder().setTopK(top_k).setPromptTemplates(templates)
    for k, v in kw.items():
        getattr(b, "set" + k[0].upper() + k[1:])(v)
    return LlmInferenceSession.createFromOptions(llm, b.build())


def test_stop_token_from_the_bundle_ends_the_response_without_its_text(bundle, greedy_ids):
    path, stop_id, pos = bundle
    tok, ids = greedy_ids
    with llm_for(path) as llm:
        s = session(llm)
        s.addQueryChunk(PROMPT)
        text = s.generateResponse()
        assert s.last_stats.stop_reason == "stop_token" and s.last_stats.decode_tokens == pos
    assert text == tok.decode(ids[:pos]).lstrip()
    assert tok.decode([stop_id]) not in text[len(text.rstrip()):] or pos == 0


def test_follow_up_turn_prefills_only_its_new_tokens(bundle):
    path, _, pos = bundle
    with llm_for(path) as llm:
        s = session(llm)
        s.addQueryChunk(PROMPT)
        s.generateResponse()
        first = s.last_stats.prefill_tokens
        assert first == llm.sizeInTokens(PROMPT) + 1  # + BOS
        held = s.n_tokens
        s.addQueryChunk(" and again")
        s.generateResponse()
        assert s.last_stats.prefill_tokens == llm.sizeInTokens(" and again")
        assert s.n_tokens > held


def test_multi_turn_equals_one_prompt_holding_the_whole_conversation(bundle):
    path, _, _ = bundle
    with llm_for(path) as llm:
        s = session(llm)
        s.addQueryChunk(PROMPT)
        a = s.generateResponse()
        s.addQueryChunk(" then")
        b = s.generateResponse()
        fresh = session(llm)
        fresh.addQueryChunk(PROMPT)
        fresh.generateResponse()
        fresh.addQueryChunk(" then")
        assert fresh.generateResponse() == b and a


def test_query_chunks_are_one_prompt(bundle):
    path, _, _ = bundle
    with llm_for(path) as llm:
        s1 = session(llm)
        for word in PROMPT.split(" "):
            s1.addQueryChunk(word if word == "the" else " " + word)
        s2 = session(llm)
        s2.addQueryChunk(PROMPT)
        assert s1.generateResponse() == s2.generateResponse()


def test_clone_shares_the_prefix_then_diverges_without_touching_the_parent(bundle):
    path, _, _ = bundle
    with llm_for(path) as llm:
        parent = session(llm)
        parent.addQueryChunk(PROMPT)
        parent.generateResponse()
        reference = session(llm)
        reference.addQueryChunk(PROMPT)
        reference.generateResponse()

        child = parent.cloneSession()
        assert child.getSessionOptions() == parent.getSessionOptions()
        assert child.n_tokens == parent.n_tokens
        child.addQueryChunk(" something else entirely")
        child_text = child.generateResponse()
        assert child.last_stats.prefill_tokens == llm.sizeInTokens(" something else entirely")  # prefix reused

        parent.addQueryChunk(" then")
        reference.addQueryChunk(" then")
        assert parent.generateResponse() == reference.generateResponse()  # the clone did not touch the parent
        assert child_text is not None


def test_cancel_stops_within_one_decode_step(model_dir):
    steps, cancel_at = [], 3
    with llm_for(model_dir, max_tokens=400) as llm:
        s = session(llm)
        s.addQueryChunk(PROMPT)
        calls = []

        def listener(partial, done):
            calls.append((partial, done))
            if not done and len(calls) == cancel_at:
                steps.append(s.last_stats.decode_tokens)  # tokens sampled when cancel is asked
                s.cancelGenerateResponseAsync()

        future = s.generateResponseAsync(listener)
        text = future.result(timeout=60)
        future.join()
        stats = s.last_stats
    assert stats.stop_reason == "cancelled"
    assert stats.decode_tokens <= steps[0] + 1  # the step in flight finishes, no more
    assert calls[-1] == ("", True) and text == "".join(p for p, _ in calls)


def test_async_session_future_and_listener_agree_with_sync(bundle):
    path, _, _ = bundle
    with llm_for(path) as llm:
        s = session(llm)
        s.addQueryChunk(PROMPT)
        got = []
        text = s.generateResponseAsync(lambda p, d: got.append((p, d))).result(timeout=60)
        s2 = session(llm)
        s2.addQueryChunk(PROMPT)
        assert text == s2.generateResponse() == "".join(p for p, _ in got)
        assert got[-1][1] is True
        s3 = session(llm)
        s3.addQueryChunk(PROMPT)
        assert s3.generateResponseAsync().result(timeout=60) == text  # no listener


def test_session_sampling_options_apply_and_update(model_dir):
    with llm_for(model_dir, max_tokens=48) as llm:
        greedy = session(llm, top_k=1)
        greedy.addQueryChunk(PROMPT)
        zero_temp = session(llm, top_k=40, temperature=0.0)
        zero_temp.addQueryChunk(PROMPT)
        assert greedy.generateResponse() == zero_temp.generateResponse()  # temperature 0 is greedy

        s = session(llm, top_k=40, randomSeed=1)
        s.updateSessionOptions(lambda b: b.setTopK(1).build())
        assert s.getSessionOptions().topK() == 1
        s.addQueryChunk(PROMPT)
        g2 = session(llm, top_k=1)
        g2.addQueryChunk(PROMPT)
        assert s.generateResponse() == g2.generateResponse()


def test_lora_path_cannot_change_and_top_k_is_bounded(model_dir, tmp_path):
    lora = tmp_path / "a.bin"
    lora.write_bytes(b"x")
    with llm_for(model_dir, topK=8) as llm:
        s = session(llm, top_k=8)
        with pytest.raises(ValueError, match="Lora path cannot be changed"):
            s.updateSessionOptions(lambda b: b.setLoraPath(str(lora)).build())
        with pytest.raises(ValueError, match="maxTopK"):
            session(llm, top_k=9)
        with pytest.raises(ValueError, match="topP"):
            LlmInferenceSessionOptions.builder().setTopP(0.0).build()


def test_prompt_templates_wrap_each_turn(bundle):
    path, _, _ = bundle
    t = PromptTemplates.builder().setUserPrefix("<|im_start|>u ").setUserSuffix(" ;").setModelPrefix(" m:") \
        .setModelSuffix("<|endoftext|>").build()
    with llm_for(path) as llm:
        templated = session(llm, templates=t)
        templated.addQueryChunk(PROMPT)
        a = templated.generateResponse()
        # the opening is tokenized with the text, as LiteRT-LM tokenizes a prefix with its input
        assert templated.last_stats.prefill_tokens == 1 + llm.sizeInTokens("<|im_start|>u " + PROMPT) + \
            llm.sizeInTokens(" ; m:")
        assert llm.sizeInTokens("<|im_start|>u " + PROMPT) != llm.sizeInTokens("<|im_start|>u ") + \
            llm.sizeInTokens(PROMPT)  # (so the test tells the two apart)
        raw = session(llm)
        for chunk in ("<|im_start|>u " + PROMPT, " ; m:"):
            raw.addQueryChunk(chunk)
        assert raw.generateResponse() == a
        # a short first answer (cancelled at once), then the next turn's opening and closing
        short = session(llm, templates=t)
        short.addQueryChunk(PROMPT)
        short.generateResponseAsync(lambda p, d: short.cancelGenerateResponseAsync()).result(timeout=60)
        short.addQueryChunk("more")
        short.generateResponseAsync(lambda p, d: short.cancelGenerateResponseAsync()).result(timeout=60)
        assert short.last_stats.prefill_tokens == sum(
            llm.sizeInTokens(x) for x in ("<|endoftext|><|im_start|>u more", " ; m:"))


def test_turn_past_max_tokens_is_refused_before_any_work(model_dir):
    with llm_for(model_dir, max_tokens=12) as llm:
        s = session(llm)
        with pytest.raises(PromptTooLongError, match="maxTokens is 12"):
            s.addQueryChunk(PROMPT * 4)
        assert s.n_tokens == 0
        s.addQueryChunk("a")
        assert s.generateResponse() is not None
        assert s.n_tokens == 12  # the response filled maxTokens (input + output) and ended normally
        with pytest.raises(PromptTooLongError):
            s.addQueryChunk("b")


def test_session_state_errors(model_dir):
    with llm_for(model_dir, max_tokens=64) as llm:
        s = session(llm)
        with pytest.raises(ValueError, match="add a query chunk"):
            s.generateResponse()
        started, release = threading.Event(), threading.Event()

        def blocking(p, d):
            started.set()
            release.wait(30)

        s.addQueryChunk(PROMPT)
        future = s.generateResponseAsync(blocking)
        assert started.wait(30)
        other = session(llm)
        for call in (lambda: other.addQueryChunk("x"), lambda: s.generateResponseAsync(), s.cloneSession):
            with pytest.raises(IllegalStateError, match="still processing"):
                call()
        release.set()
        future.result(timeout=60)
        future.join()
        s.close()
        with pytest.raises(IllegalStateError, match="closed"):
            s.addQueryChunk("x")
    with pytest.raises(IllegalStateError, match="closed"):
        session(llm)


def test_a_lone_surrogate_is_refused_naming_its_index_and_code_point(model_dir):
    with llm_for(model_dir, max_tokens=64) as llm:
        s = session(llm)
        for call, name in [(s.addQueryChunk, "inputText"), (s.sizeInTokens, "text")]:
            with pytest.raises(ValueError, match=rf"^{name}: lone surrogate U\+D800 at index 2 is not valid text") as e:
                call("ab\ud800c")
            assert type(e.value) is ValueError  # not a UnicodeEncodeError from the tokenizer
        assert s.n_tokens == 0  # nothing of the refused chunk was added
        s.addQueryChunk("a phone \U0001f4f1")  # emoji are text
        assert s.n_tokens > 0 and isinstance(s.generateResponse(), str)
    with pytest.raises(ValueError, match=r"^promptTemplates.userPrefix: lone surrogate U\+DC00 at index 1 "):
        PromptTemplates(user_prefix="<\udc00")
    with pytest.raises(ValueError, match=r"^promptTemplates.systemSuffix: lone surrogate U\+D800 at index 0 "):
        PromptTemplates.builder().setSystemSuffix("\ud800").build()


def test_model_chat_template_is_the_default(tmp_path, model_dir):
    import json
    import shutil

    folder = tmp_path / "chat"
    shutil.copytree(model_dir, folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["chat_template"] = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + ' ' + m['content'] + "
                            "'<|endoftext|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant ' }}"
                            "{% endif %}")
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    with llm_for(folder) as llm:
        s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())
        s.addQueryChunk(PROMPT)
        a = s.generateResponse()
        raw = session(llm)
        for chunk in ("<|im_start|>user " + PROMPT, "<|endoftext|><|im_start|>assistant "):
            raw.addQueryChunk(chunk)
        assert raw.generateResponse() == a
        # LlmInference applies it too, and a prompt already in the chat format is not wrapped twice
        llm.generateResponse(PROMPT)
        assert llm.last_stats.prefill_tokens == s.last_stats.prefill_tokens
        formatted = "<|im_start|>user " + PROMPT + "<|endoftext|><|im_start|>assistant "
        llm.generateResponse(formatted)
        assert llm.last_stats.prefill_tokens == 1 + llm.sizeInTokens(formatted)
