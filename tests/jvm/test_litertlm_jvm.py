"""LiteRT-LM's Kotlin API (com.google.ai.edge.litertlm) on the host JVM over libpocketlm:
LiteRtLmSample.kt, a program in the shape of LiteRT-LM's Android sample and Kotlin guide
(a conversation with a system instruction, earlier messages and a tool set; a message answered
whole, streamed to a MessageCallback and collected as a Flow; a tool's response sent back;
cancelProcess), compiled unchanged against the classes, answers as pocketlm's Python litert_lm
does for the same program (greedy) on a GGUF, and bad input is refused with clear errors.

Skips without a JDK, kotlinc or the built bridge and jar, except where POCKETLM_REQUIRE_JVM=1."""

import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import pocketlm.litertlm as litert_lm

SOURCE = Path(__file__).parent / "LiteRtLmSample.kt"
QUESTION = "What is the capital of France?"
# a ChatML template in LiteRT-LM's inputs (content as a list of parts; a tool's response in a user turn, as
# Qwen's and Gemma's templates write it): libpocketlm's C text path recognises its family and turns
CHATML = ("{% for m in messages %}{% if loop.first and m.role != 'system' %}<|im_start|>system\nYou are a "
          "helpful AI assistant.<|im_end|>\n{% endif %}<|im_start|>{% if m.role == 'tool' %}user{% else %}"
          "{{ m.role }}{% endif %}\n{% for c in m.content %}{% if c.type == 'text' %}{{ c.text }}{% else %}"
          "{{ c.response | tojson }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _config(*flags) -> str:
    from pocketlm.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["config", *flags]) == 0
    return buf.getvalue().strip()


@pytest.fixture(scope="module")
def jvm(tmp_path_factory):
    why = None
    for tool in ("java", "kotlinc"):
        if shutil.which(tool) is None:
            why = f"{tool} is not installed (Debian: default-jdk-headless kotlin libkotlinx-coroutines-java)"
    lib = Path(__import__("pocketlm.kernels.native", fromlist=["LIBRARY"]).LIBRARY).parent
    for name in ("pocketlm-litertlm.jar", "libpocketlm_jni.so"):
        if why is None and not (lib / name).is_file():
            why = f"{name} is not built in {lib} (kotlinc and libkotlinx-coroutines-java at install time)"
    if why is not None:
        if os.environ.get("POCKETLM_REQUIRE_JVM") == "1":
            pytest.fail(f"POCKETLM_REQUIRE_JVM=1 but {why}")
        pytest.skip(why)
    cp, libpath = _config("--classpath"), _config("--java-library-path")
    jar = tmp_path_factory.mktemp("litertlm-jvm") / "sample.jar"
    out = subprocess.run(["kotlinc", str(SOURCE), "-cp", cp, "-d", str(jar)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return ["java", f"-Djava.library.path={libpath}", "-cp", f"{jar}:{cp}", "LiteRtLmSampleKt"]


@pytest.fixture(scope="module")
def chatml_gguf(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from tests.fixtures import checkpoints
    from tests.fixtures.tokenizers import train_byte_level_bpe

    root = tmp_path_factory.mktemp("litertlm-chatml")
    bpe = train_byte_level_bpe(root / "bpe", vocab_size=320) / "tokenizer.json"
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(bpe), eos_token="<|im_end|>",
                                               extra_special_tokens={"t0": "<|im_start|>"})
    tok.chat_template = CHATML
    folder = checkpoints.llama(root / "ckpt", vocab_size=len(tok), eos_token_id=tok.eos_token_id,
                               max_position_embeddings=512)
    tok.save_pretrained(folder)
    return convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(root / "out"),
                                               is_quantized=False))


def run_jvm(jvm, model, max_tokens, properties=()):
    out = subprocess.run([jvm[0], *properties, *jvm[1:], str(model), str(max_tokens), QUESTION],
                         capture_output=True, text=True, timeout=300)
    records = [r for r in out.stdout.split("\x1e") if r]
    return out.returncode, dict(r.split(" ", 1) if " " in r else (r, "") for r in records), out.stderr


def get_current_weather(city: str, country: str | None = None, unit: str = "celsius") -> dict:
    """Get the current weather for a city.

    Args:
        city: The city name, e.g., San Francisco
        country: Optional country code, e.g., US
        unit: Temperature unit (celsius or fahrenheit). Default: celsius
    """
    return {"temperature": 25, "unit": unit, "condition": "Sunny"}


def python_program(model, max_tokens):
    """LiteRtLmSample.kt's conversations in pocketlm's Python litert_lm."""
    out = {}
    with litert_lm.Engine(str(model), backend=litert_lm.Backend.CPU(), max_num_tokens=max_tokens) as engine:
        def conversation(**kw):
            return engine.create_conversation(
                system_message="You are a helpful assistant.",
                messages=[litert_lm.Message.user("What is the capital city of the United States?"),
                          {"role": "model", "content": "Washington, D.C."}],
                tools=[get_current_weather], sampler_config=litert_lm.SamplerConfig(top_k=1), **kw)

        with conversation() as c:
            out["RENDER"] = c.render_message_to_string(QUESTION)
            out["SYNC"] = str(c.send_message(QUESTION))
        with conversation() as c:
            out["ASYNC"] = "".join(str(m) for m in c.send_message_async(QUESTION))
        with conversation(automatic_tool_calling=False) as c:
            out["TOOL"] = str(c.send_message({"role": "tool", "content": [
                {"type": "tool_response", "name": "getCurrentWeather",
                 "response": {"temperature": 25, "unit": "celsius", "condition": "Sunny"}}]}))
    return out


def test_the_litert_lm_sample_answers_as_pythons_litert_lm(jvm, chatml_gguf):
    rc, got, err = run_jvm(jvm, chatml_gguf, 240)
    assert rc == 0, (got, err)
    want = python_program(chatml_gguf, 240)
    # nothing is prefilled yet: the system instruction and the earlier messages come with the first message
    assert bytes.fromhex(got["RENDER"]).decode() == want["RENDER"] == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital city of "
        "the United States?<|im_end|>\n<|im_start|>assistant\nWashington, D.C.<|im_end|>\n<|im_start|>user\n"
        "What is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert want["SYNC"].strip()
    for key in ("SYNC", "ASYNC", "TOOL"):
        assert bytes.fromhex(got[key]).decode() == want[key], key
    # the callback's and the Flow's pieces are the same text, streamed in many pieces on a thread of their own
    assert got["FLOW"] == got["ASYNC"] == got["SYNC"]
    assert int(got["CALLS"]) > 10 and got["THREAD"] == "pocketlm-generation"
    assert want["TOOL"] != want["SYNC"]  # the tool's response went into the prompt


def test_cancel_and_refusals(jvm, chatml_gguf):
    rc, got, err = run_jvm(jvm, chatml_gguf, 240)
    assert rc == 0, (got, err)
    assert 3 <= int(got["CANCELLED_AFTER"]) < 20  # stopped before its next token or two
    assert got["BUSY"] == "IllegalStateException: Previous invocation still processing."
    assert got["CLOSED"] == "IllegalStateException: Conversation is not alive."
    assert got["IMAGE"] == "IllegalArgumentException: a ImageFile part: pocketlm runs text models only"
    assert got["MAX_OUTPUT"].startswith("IllegalArgumentException: maxOutputToken=8 is not supported")
    assert got["BAD_TOOL"].startswith("IllegalArgumentException: tool bad, parameter m: type ") \
        and "is not a tool parameter type" in got["BAD_TOOL"]
    assert got["GPU"].startswith("LiteRtLmJniException: Failed to create engine for ") \
        and "the GPU backend is not simulated" in got["GPU"]
    assert got["SAMPLER"] == "IllegalArgumentException: topK should be positive, but got 0."


def test_a_device_profile_holds_the_engine_with_pythons_figures(jvm, chatml_gguf):
    from pocketlm import LlmInference, LlmInferenceOptions, device
    from pocketlm.device import DeviceMemoryError

    with pytest.raises(DeviceMemoryError) as python:
        LlmInference.createFromOptions(device.context("low_end_4gb"), LlmInferenceOptions.builder()
                                       .setModelPath(str(chatml_gguf)).setMaxTokens(50_000_000).build())
    rc, got, err = run_jvm(jvm, chatml_gguf, 50_000_000, properties=["-Dpocketlm.device=low_end_4gb"])
    assert rc != 0 and f"pocketlm.DeviceMemoryException: {python.value}" in err
    rc, got, err = run_jvm(jvm, chatml_gguf, 240, properties=["-Dpocketlm.device=low_end_4gb"])
    assert rc == 0 and got["SYNC"], err


def test_tool_calls_descriptions_and_json_as_python_reads_and_writes_them(jvm, tmp_path):
    """LiteRtLmInternals.kt, built in one module with the classes: each family's tool call is parsed and
    streamed (the call held back) as pocketlm.litertlm._chat does, a @Tool set's description and run, and
    JSON written as json.dumps writes it."""
    import json

    from pocketlm.litertlm._chat import ToolCallStream, parse_tool_calls

    cp = jvm[jvm.index("-cp") + 1].split(":", 1)[1]
    sources = sorted(str(p) for p in (Path(__file__).parents[2] / "android_stub" / "kotlin").rglob("*.kt"))
    jar = tmp_path / "internals.jar"
    out = subprocess.run(["kotlinc", *sources, str(Path(__file__).parent / "LiteRtLmInternals.kt"), "-cp", cp,
                          "-d", str(jar)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(["java", "-cp", f"{jar}:{cp}", "com.google.ai.edge.litertlm.LiteRtLmInternalsKt"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = dict(r.split(" ", 1) for r in out.stdout.split("\x1e") if r)
    calls = {"qwen": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
             "phi4": '<|tool_call|>[{"name": "f", "arguments": {"a": 1}}]<|/tool_call|>',
             "gemma3": "```tool_code\nf(a=1, b='x', c=[True, None])\n```",
             "llama3": '{"name": "f", "parameters": {"a": 1}}'}
    for family, call in calls.items():
        text = call if family == "llama3" else f"Let me look <that> up. {call} done"
        rest, found = parse_tool_calls(text, family)
        assert json.loads(got[f"PARSE_{family}"]) == [rest, [c["function"] for c in found]], family
        pieces = []
        stream = ToolCallStream(family, pieces.append)
        for ch in text:
            stream.feed(ch)
        before = "".join(pieces)
        stream.finish(text, found)
        assert json.loads(got[f"STREAM_{family}"]) == [before, "".join(pieces)], family
        assert got[f"BROKEN_{family}"] == "0"
    assert json.loads(got["DESCRIPTIONS"])[1] == {
        "name": "getCurrentWeather", "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city name"},
            "country": {"type": "string", "nullable": True, "description": "Optional country code"},
            "days": {"type": "integer", "description": "Days ahead"},
            "hours": {"type": "array", "items": {"type": "number"}, "description": "Hours"}},
            "required": ["city"]}}
    assert json.loads(got["RUN"]) == {"city": "Paris", "country": None, "days": 1, "hours": 3.5}
    # a tool that throws, or is not there, answers the model with the error; the conversation goes on
    assert json.loads(got["RESPONSES"]) == [
        ["getCurrentWeather", {"city": "Oslo", "country": None, "days": 1, "hours": 0.0}],
        ["broken", "Error: the service is down true"], ["nowhere", "Error: Tool nowhere not found"]]
    assert got["RUN_BAD"] == "tool getCurrentWeather, parameter city: 3 is not a string"
    assert got["JSON"] == json.dumps({"s": "caf\u00e9 \"q\"\n", "n": [1, 2.0, 2.5, True, None]}, ensure_ascii=False)
    assert json.loads(got["PARSED"]) == {"a": [1, -25.0, "\u00e9\n", False, None], "b": {}}
