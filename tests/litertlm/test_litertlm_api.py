"""A program written against litert_lm 0.18's documented API runs unchanged on
pocketlm.litertlm: on the .litertlm fixtures it gives the text litert_lm
itself answered (tests/fixtures/litert/fixtures.json), on a GGUF the text of
pocketlm's MediaPipe API for the same sampler, greedy and seeded; and bad
input is refused with litert_lm's errors."""

from __future__ import annotations

import json

import pytest

import pocketlm.litertlm as litert_lm
from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.tasks.llm_inference_session import PromptTemplates
from tests.fixtures.litert import FIXTURES_JSON, FOLDER

RECORDED = json.loads(FIXTURES_JSON.read_text())["files"]
FILES = ["llama-tiny-int8.litertlm", "llama-tiny-f32.litertlm", "llama-bpe-int8.litertlm", "llama-tiny-int8.task"]


def litert_lm_program(litert_lm, path, prompt):
    """What tools/make_litert_fixtures.py ran on litert_lm, line for line."""
    engine = litert_lm.Engine(str(path), backend=litert_lm.Backend.CPU(thread_count=1))
    greedy = litert_lm.SamplerConfig(top_k=1)
    out = {}
    for key, template in (("session", False), ("session_templated", True)):
        s = engine.create_session(apply_prompt_template=template, sampler_config=greedy, max_output_tokens=32)
        s.run_prefill([prompt])
        out[key] = s.run_decode().texts[0]
        s.close()
    conv = engine.create_conversation(sampler_config=greedy, max_output_tokens=32)
    out["conversation_prompt"] = conv.render_message_to_string(prompt)
    out["conversation"] = "".join(c["text"] for c in conv.send_message(prompt).to_json()["content"]
                                  if c.get("type") == "text")
    out["token_count"] = conv.token_count
    conv.close()
    out["bos_token_id"], out["eos_token_ids"] = engine.bos_token_id, engine.eos_token_ids
    engine.close()
    return out


@pytest.mark.parametrize("name", FILES)
def test_a_litert_lm_program_gives_litert_lms_text(name):
    pytest.importorskip("litert_lm", reason="the LiteRT runtime (pip install pocketlm[litert])")
    rec = RECORDED[name]["litert_lm"]
    for p in rec["prompts"]:
        got = litert_lm_program(litert_lm, FOLDER / name, p["prompt"])
        for key in ("session", "session_templated", "conversation_prompt", "conversation"):
            assert got[key] == p[key], (key, p["prompt"])
        # the start token, the rendered turn, then the 32 tokens of the answer
        assert got["token_count"] == len(p["conversation_ids"]) + 32
        assert got["bos_token_id"] == rec["bos_token_id"]
        assert {tuple(i) for i in got["eos_token_ids"]} == {tuple(i) for i in rec["eos_token_ids"]}


@pytest.mark.parametrize("sampler", [dict(top_k=1), dict(top_k=40, top_p=1.0, temperature=0.8, seed=7)])
def test_a_session_on_a_gguf_gives_the_mediapipe_apis_text(gguf, kind, sampler):
    prompt = "the model runs on a phone"
    with litert_lm.Engine(str(gguf), max_num_tokens=128, engine=kind) as engine:
        s = engine.create_session(apply_prompt_template=False, sampler_config=litert_lm.SamplerConfig(**sampler),
                                  max_output_tokens=20)
        s.run_prefill([prompt])
        ours = s.run_decode().texts[0]
        assert engine.pocketlm_engine.kind == kind
    import os
    os.environ["POCKETLM_ENGINE"] = kind
    try:
        opts = LlmInferenceOptions.builder().setModelPath(str(gguf)).setMaxTokens(128).build()
        with LlmInference.createFromOptions(None, opts) as llm:
            b = LlmInferenceSessionOptions.builder().setPromptTemplates(PromptTemplates()).setTopK(
                sampler["top_k"]).setTemperature(sampler.get("temperature", 1.0)).setRandomSeed(sampler.get("seed", 0))
            if sampler["top_k"] == 1:
                b = b.setTopP(0.95)
            ms = LlmInferenceSession.createFromOptions(llm, b.build())
            ms.addQueryChunk(prompt)
            theirs = []
            fut = ms.generateResponseAsync(lambda part, done: theirs.append(part))
            fut.result()
    finally:
        del os.environ["POCKETLM_ENGINE"]
    # the same 20 tokens begin MediaPipe's longer answer (its first piece has its whitespace stripped; our
    # last token may end inside a UTF-8 character, which decodes to U+FFFD)
    mine = ours.lstrip().rstrip("\ufffd")
    assert len(mine) > 5 and "".join(theirs).startswith(mine), (ours, "".join(theirs))


def test_sampler_config_defaults_and_checks():
    from pocketlm.litertlm.engine import _sampler

    s = _sampler(litert_lm.SamplerConfig(temperature=0.5), {})
    assert (s.top_k, s.top_p, s.temperature, s.seed) == (1, 0.95, 0.5, 0)
    with pytest.raises(ValueError, match="top_k should be positive, but got 0"):
        litert_lm.SamplerConfig(top_k=0)
    with pytest.raises(ValueError, match="top_p should between 0 and 1 inclusively"):
        litert_lm.SamplerConfig(top_p=1.5)


def test_conversation_turns_streaming_and_benchmark(gguf, kind):
    with litert_lm.Engine(str(gguf), max_num_tokens=256, engine=kind, enable_benchmark=True) as engine:
        conv = engine.create_conversation(sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=6,
                                          chat_template="{% for m in messages %}<{{ m.role }}>"
                                                        "{{ m.content[0].text }}{% endfor %}"
                                                        "{% if add_generation_prompt %}<assistant>{% endif %}",
                                          system_message="be brief")
        assert conv.token_count == 0
        assert conv.render_message_to_string("hi") == "<system>be brief<user>hi<assistant>"
        first = conv.send_message("hi")
        assert first["role"] == "assistant" and first.to_json()["content"][0]["type"] == "text"
        n1 = conv.token_count
        assert n1 == 1 + len(engine.tokenize("<system>be brief<user>hi<assistant>")) + 6
        info = conv.get_benchmark_info()
        assert info.last_decode_token_count == 6 and info.last_prefill_token_count == n1 - 6
        # the second turn prefills only what the render adds: the user turn and the generation prompt
        assert conv.render_message_to_string("again") == "<user>again<assistant>"
        chunks = list(conv.send_message_async(litert_lm.Message.user("again")))
        assert all(isinstance(c, litert_lm.Message) for c in chunks) and len(chunks) >= 1
        assert conv.token_count == n1 + len(engine.tokenize("<user>again<assistant>")) + 6
        conv.close()
        with pytest.raises(RuntimeError, match="Conversation is closed."):
            conv.send_message("x")
        with pytest.raises(RuntimeError, match="Conversation is closed."):
            conv.token_count
        b = engine.create_conversation()
        with pytest.raises(RuntimeError, match="Failed to get benchmark info."):
            litert_lm.Engine(str(gguf), max_num_tokens=64, engine=kind).create_conversation().get_benchmark_info()
        b.close()


def test_session_decode_scoring_and_errors(gguf, kind):
    with litert_lm.Engine(str(gguf), max_num_tokens=128, engine=kind) as engine:
        s = engine.create_session(sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=5)
        with pytest.raises(RuntimeError, match="Session is not prefilled yet"):
            s.run_decode()
        s.run_prefill(["the model", " runs"])
        text = s.run_decode().texts[0]
        streamed = []
        s2 = engine.create_session(sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=5)
        s2.run_prefill(["the model", " runs"])
        streamed = "".join(r.texts[0] for r in s2.run_decode_async())
        assert streamed == text
        scored = s2.run_text_scoring(["on a phone"], store_token_lengths=True)
        n = len(engine.tokenize("on a phone"))
        assert scored.token_lengths == [n] and len(scored.token_scores[0]) == n
        assert scored.scores[0] == pytest.approx(sum(scored.token_scores[0])) and scored.scores[0] < 0
        # the likelier continuation scores higher: the greedy text itself
        greedy = s2.run_text_scoring([text[:3]])
        assert all(x <= 0 for x in greedy.token_scores[0])


def test_refusals(gguf):
    with pytest.raises(RuntimeError, match="gpu backend is not simulated"):
        litert_lm.Engine(str(gguf), backend=litert_lm.Backend.GPU())
    with pytest.raises(ValueError, match="activation_data_type"):
        litert_lm.Engine(str(gguf), activation_data_type=litert_lm.ActivationDataType.INT8)
    with litert_lm.Engine(str(gguf), max_num_tokens=64) as engine:
        conv = engine.create_conversation()
        with pytest.raises(ValueError, match="unknown role 'robot'"):
            conv.send_message({"role": "robot", "content": "x"})
        with pytest.raises(ValueError, match="response_format cannot be used unless constrained_decoding_config"):
            conv.send_message("x", response_format=litert_lm.ResponseFormat.json({"type": "object"}))
        with pytest.raises(ValueError, match="repetition_penalty_config"):
            conv.send_message("x", repetition_penalty_config=litert_lm.RepetitionPenaltyConfig(repetition_penalty=1.3))
        bad = engine.create_conversation(chat_template="{{ messages[0].content + 1 }}")
        # minijinja's message, as LiteRT-LM's runtime reports it
        with pytest.raises(RuntimeError, match="Failed to apply template: invalid operation: tried to use \\+ "
                                               "operator on unsupported types sequence and number"):
            bad.send_message("x")
    with pytest.raises(ValueError, match="Invalid JSON schema string"):
        litert_lm.ResponseFormat.json("{not json")
    with pytest.raises(RuntimeError, match="Engine is closed"):
        engine.tokenize("x")


def test_a_device_context_holds_the_engine(gguf):
    from pocketlm.device import DeviceMemoryError, context

    ctx = context("low_end_4gb")
    with litert_lm.Engine(str(gguf), max_num_tokens=64, device=ctx) as engine:
        assert ctx.memory.in_use > 0
        conv = engine.create_conversation(max_output_tokens=2)
        conv.send_message("hi")
        conv.close()
    with pytest.raises(ValueError, match="more threads than"):
        litert_lm.Engine(str(gguf), backend=litert_lm.Backend.CPU(thread_count=10_000), device=ctx)
    assert DeviceMemoryError


def test_litert_lms_interfaces_and_embedding_names_are_there():
    import litert_lm as real

    import pocketlm.litertlm as ours

    engine_cls = (ours.Engine, ours.Session, ours.Conversation, ours.Benchmark)
    for abstract, cls in zip((ours.AbstractEngine, ours.AbstractSession, ours.AbstractConversation,
                              ours.AbstractBenchmark), engine_cls):
        assert issubclass(cls, abstract)
        assert set(getattr(real, abstract.__name__).__abstractmethods__) == set(abstract.__abstractmethods__)
    assert {m.name: m.value for m in ours.InputOverflowStrategy} == {m.name: m.value for m in real.InputOverflowStrategy}
    with pytest.raises(NotImplementedError, match="embedding models are not supported"):
        ours.EmbeddingEngine("model.litertlm")
