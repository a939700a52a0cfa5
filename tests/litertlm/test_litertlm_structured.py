"""Structured output and tools: llguidance's mask applied at every decode step
of both engines (the C loop through plm_session_generate_masked), so seeded
samples from an untrained model are valid against their schema; tool calls
constrained to a family's format are parsed, run, fed back as a tool message,
and the conversation goes on."""

from __future__ import annotations

import json

import pytest

import pocketlm.litertlm as litert_lm
from pocketlm.litertlm import extras

pytest.importorskip("llguidance", reason="structured output needs llguidance (pip install llguidance)")

SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8},
                                           "days": {"type": "integer", "minimum": 1, "maximum": 30}},
          "required": ["city", "days"], "additionalProperties": False,
          # llguidance's own key (LiteRT-LM hands the schema to llguidance as it is): no free whitespace, so
          # an untrained model's answer ends within max_output_tokens
          "x-guidance": {"whitespace_flexible": False}}
CONSTRAINED = litert_lm.ConstrainedDecodingConfig(provider=litert_lm.LiteRtLmConstraintProviderType.LL_GUIDANCE)
CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{% for c in m.content %}{% if c.type == 'text' %}"
          "{{ c.text }}{% else %}{{ c.response | tojson }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
GEMMA3 = "{# <start_of_turn> #}" + CHATML


def test_fifty_seeded_json_samples_are_valid_on_both_engines(gguf, kind):
    with litert_lm.Engine(str(gguf), max_num_tokens=256, engine=kind) as engine:
        fmt = litert_lm.ResponseFormat.json(SCHEMA)
        answers = []
        for seed in range(50):
            conv = engine.create_conversation(
                sampler_config=litert_lm.SamplerConfig(top_k=40, temperature=1.0, seed=seed),
                constrained_decoding_config=CONSTRAINED, chat_template=CHATML, max_output_tokens=60)
            text = str(conv.send_message("plan a trip", response_format=fmt))
            conv.close()
            data = json.loads(text)
            assert set(data) == {"city", "days"} and isinstance(data["city"], str) and len(data["city"]) <= 8
            assert isinstance(data["days"], int) and 1 <= data["days"] <= 30
            answers.append(text)
        assert len(set(answers)) > 10  # sampled, not one forced answer


def test_the_mask_gives_the_same_seeded_text_on_both_engines(gguf):
    got = []
    for kind in ("native", "python"):
        with litert_lm.Engine(str(gguf), max_num_tokens=256, engine=kind) as engine:
            conv = engine.create_conversation(sampler_config=litert_lm.SamplerConfig(top_k=40, seed=3),
                                              constrained_decoding_config=CONSTRAINED, chat_template=CHATML,
                                              max_output_tokens=60)
            got.append(str(conv.send_message("x", response_format=litert_lm.ResponseFormat.regex("[a-z]{3,9}!"))))
    assert got[0] == got[1]
    assert got[0].endswith("!") and got[0][:-1].isalpha()


def test_a_malformed_schema_is_refused_by_name(gguf):
    with litert_lm.Engine(str(gguf), max_num_tokens=64) as engine:
        conv = engine.create_conversation(constrained_decoding_config=CONSTRAINED)
        with pytest.raises(ValueError, match="response_format"):
            conv.send_message("x", response_format=litert_lm.ResponseFormat.json({"type": "no-such-type"}))


def get_weather(city: str, days: int = 1) -> dict:
    """Gets the weather.

    Args:
        city: The city.
        days: How many days.
    """
    calls.append((city, days))
    return {"city": city, "forecast": "sun"}


def broken(city: str) -> str:
    """Always fails."""
    raise RuntimeError("the weather service is down")


calls: list = []


class Weather(litert_lm.Tool):
    """A Tool subclass whose schema bounds its arguments, so an untrained model's call ends in a few tokens."""

    def get_tool_description(self):
        return {"type": "function", "function": {"name": "get_weather", "description": "Gets the weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 6},
                                                                "days": {"type": "integer", "minimum": 1,
                                                                         "maximum": 9}},
                               "required": ["city", "days"], "additionalProperties": False}}}

    def execute(self, param):
        return get_weather(**param)


class Broken(Weather):
    def get_tool_description(self):
        d = super().get_tool_description()
        d["function"]["name"] = "broken"
        return d

    def execute(self, param):
        return broken(param["city"])


def test_tool_from_function_schema():
    desc = litert_lm.tool_from_function(get_weather).get_tool_description()
    assert desc == {"type": "function", "function": {
        "name": "get_weather", "description": "Gets the weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city."},
                                                        "days": {"type": "integer", "description": "How many days."}},
                       "required": ["city"]}}}


@pytest.mark.parametrize("family", ["qwen", "phi4", "gemma3", "llama3"])
def test_each_familys_tool_call_is_parsed(family):
    from pocketlm.litertlm._chat import parse_tool_calls

    text = {"qwen": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
            "phi4": '<|tool_call|>[{"name": "f", "arguments": {"a": 1}}]<|/tool_call|>',
            "gemma3": "```tool_code\nf(a=1)\n```",
            "llama3": '{"name": "f", "parameters": {"a": 1}}'}[family]
    rest, found = parse_tool_calls("ok " + text if family != "llama3" else text, family)
    assert found == [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]
    assert parse_tool_calls(text.replace("f", "f(", 1) if family == "gemma3" else text[:-3], family)[1] == []


@pytest.mark.parametrize("family", ["qwen", "phi4", "gemma3", "llama3"])
def test_a_constrained_tool_call_round_trip(gguf, kind, family):
    calls.clear()
    marker = {"qwen": "<tool_call>", "phi4": "<|tool_call|>", "gemma3": "<start_of_turn>",
              "llama3": "<|start_header_id|>"}[family]
    with litert_lm.Engine(str(gguf), max_num_tokens=512, engine=kind) as engine:
        # room for the whole call: Qwen's and Phi-4's JSON calls in their tags take ~90 tokens of this byte-level
        # vocabulary, and a call max_output_tokens cuts short stays text (no tool runs)
        conv = engine.create_conversation(tools=[Weather()], chat_template="{# " + marker + " #}" + CHATML,
                                          sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=128,
                                          constrained_decoding_config=CONSTRAINED)
        assert extras.tool_family(conv) == family
        before = conv.token_count
        reply = conv.send_message("weather?", response_format=extras.tool_call_format(family, [Weather()]))
        assert len(calls) >= 1 and isinstance(calls[0][0], str)  # the function ran with the model's arguments
        # its result went back as a tool message and the model answered again, in the same call
        tool_turns = [m for m in conv._history if m["role"] == "tool"]
        assert tool_turns and tool_turns[0]["content"][0]["response"]["forecast"] == "sun"
        assert conv.token_count > before and reply.role == litert_lm.Role.MODEL


def test_a_tool_call_cut_short_by_max_output_tokens_stays_text_and_warns(gguf, caplog):
    calls.clear()
    with litert_lm.Engine(str(gguf), max_num_tokens=512) as engine:
        conv = engine.create_conversation(tools=[Weather()], chat_template="{# <tool_call> #}" + CHATML,
                                          sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=20,
                                          constrained_decoding_config=CONSTRAINED)
        with caplog.at_level("WARNING", logger="pocketlm"):
            reply = conv.send_message("weather?", response_format=extras.tool_call_format("qwen", [Weather()]))
    assert not calls and not reply.tool_calls and str(reply).startswith("<tool_call>")
    assert "reached max_output_tokens=20 before its response format was complete" in caplog.text


def test_a_tool_that_raises_sends_the_error_to_the_model(gguf):
    with litert_lm.Engine(str(gguf), max_num_tokens=512) as engine:
        conv = engine.create_conversation(tools=[Broken()], chat_template=GEMMA3, max_output_tokens=80,
                                          sampler_config=litert_lm.SamplerConfig(top_k=1),
                                          constrained_decoding_config=CONSTRAINED)
        conv.send_message("go", response_format=extras.tool_call_format("gemma3", [Broken()]))
        tool_turns = [m for m in conv._history if m["role"] == "tool"]
        assert tool_turns[0]["content"][0] == {"type": "tool_response", "name": "broken",
                                               "response": "Error: the weather service is down"}
        # without automatic calling the call comes back to the caller
        manual = engine.create_conversation(tools=[Broken()], chat_template=GEMMA3, automatic_tool_calling=False,
                                            max_output_tokens=80, constrained_decoding_config=CONSTRAINED)
        msg = manual.send_message("go", response_format=extras.tool_call_format("gemma3", [Broken()]))
        assert msg.tool_calls and msg.tool_calls[0].name == "broken"


@pytest.mark.parametrize("family", ["qwen", "phi4", "gemma3", "llama3"])
def test_a_turns_text_streams_and_its_tool_call_is_held_back(family):
    from pocketlm.litertlm._chat import ToolCallStream, parse_tool_calls

    call = {"qwen": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
            "phi4": '<|tool_call|>[{"name": "f", "arguments": {"a": 1}}]<|/tool_call|>',
            "gemma3": "```tool_code\nf(a=1)\n```",
            "llama3": '{"name": "f", "parameters": {"a": 1}}'}[family]
    text = call if family == "llama3" else "Let me look <that> up. " + call + " done"
    got, before_end = [], []
    stream = ToolCallStream(family, got.append)
    for ch in text:  # one character a piece
        stream.feed(ch)
    before_end = "".join(got)
    rest, calls = parse_tool_calls(text, family)
    stream.finish(text, calls)
    assert calls and "".join(got) == rest
    if family != "llama3":
        assert before_end == "Let me look <that> up. "  # streamed before the turn ended; "<" held only while
        # it could still open a call
    # a call that does not parse is given as text when the turn ends
    got.clear()
    stream = ToolCallStream(family, got.append)
    broken = text.replace("f", "f(", 1) if family == "gemma3" else text.replace('"a": 1}', '"a": 1', 1)
    for ch in broken:
        stream.feed(ch)
    stream.finish(broken, parse_tool_calls(broken, family)[1])
    assert "".join(got) == broken


def test_send_message_async_with_tools_streams_every_rounds_text(gguf):
    def conversation(engine):
        return engine.create_conversation(tools=[Weather()], chat_template="{# <tool_call> #}" + CHATML,
                                          sampler_config=litert_lm.SamplerConfig(top_k=1), max_output_tokens=128,
                                          constrained_decoding_config=CONSTRAINED)

    fmt = extras.tool_call_format("qwen", [Weather()])
    with litert_lm.Engine(str(gguf), max_num_tokens=512) as engine:
        calls.clear()
        whole = str(conversation(engine).send_message("weather?", response_format=fmt))
        assert len(calls) == 1
        chunks = list(conversation(engine).send_message_async("weather?", response_format=fmt))
        assert len(calls) == 2  # the call ran again, and its text was not streamed
        texts = [str(c) for c in chunks]
        assert len(texts) > 10 and "".join(texts) == whole and "<tool_call>" not in "".join(texts)
