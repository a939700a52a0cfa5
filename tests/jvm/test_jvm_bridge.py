"""MediaPipe's Android LLM Inference API on the host JVM (android_stub/ over
bridge/'s libpocketlm_jni.so), driven by a Kotlin program (ApiCheck.kt)
written against MediaPipe's classes only, compiled with Debian's kotlinc and
compared with pocketlm's Python API on the same model and options.

Skips without a JDK, kotlinc or the built bridge, except where
POCKETLM_REQUIRE_JVM=1 (CI) makes that a failure."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.builtin import default_model_path
from pocketlm.tasks.llm_inference_session import PromptTemplates
from tests.fixtures.mediapipe import BUNDLES, FOLDER

SOURCE = Path(__file__).parent / "ApiCheck.kt"
TURNS = ("Name the capital of France.", "And of Italy?")


def _missing() -> str | None:
    for tool in ("java", "kotlinc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: default-jdk-headless kotlin)"
    lib = Path(__import__("pocketlm.kernels.native", fromlist=["LIBRARY"]).LIBRARY).parent
    for name in ("pocketlm-android.jar", "libpocketlm_jni.so"):
        if not (lib / name).is_file():
            return f"{name} is not built in {lib} (a JDK and libguava-java must be there when pocketlm is installed)"
    return None


@pytest.fixture(scope="module")
def jvm(tmp_path_factory):
    """(command prefix that runs ApiCheck, classpath)."""
    why = _missing()
    if why is not None:
        if os.environ.get("POCKETLM_REQUIRE_JVM") == "1":
            pytest.fail(f"POCKETLM_REQUIRE_JVM=1 but {why}")
        pytest.skip(why)
    from pocketlm.cli import main
    import contextlib
    import io

    def config(*flags):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["config", *flags]) == 0
        return buf.getvalue().strip()

    cp, libpath = config("--classpath"), config("--java-library-path")
    jar = tmp_path_factory.mktemp("jvm") / "apicheck.jar"
    subprocess.run(["kotlinc", str(SOURCE), "-cp", cp, "-include-runtime", "-d", str(jar)], check=True,
                   capture_output=True, timeout=600)
    return ["java", f"-Djava.library.path={libpath}", "-cp", f"{jar}:{cp}", "ApiCheckKt"]


def run_jvm(jvm, mode, model, max_tokens=256, top_k=1, temperature=0.0, seed=0, profile=None, turns=TURNS):
    out = subprocess.run([*jvm, mode, str(model), str(max_tokens), str(top_k), str(temperature), str(seed),
                          profile or "-", *turns], capture_output=True, text=True, timeout=300)
    records = [r for r in out.stdout.split("\x1e") if r]
    return out.returncode, dict(r.split(" ", 1) if " " in r else (r, "") for r in records), out.stderr


def py_options(model, max_tokens=256, top_k=1, temperature=0.0, seed=0):
    return LlmInferenceOptions.builder().setModelPath(str(model)).setMaxTokens(max_tokens).setTopK(top_k) \
        .setTemperature(temperature).setRandomSeed(seed).build()


SAMPLINGS = [dict(top_k=1, temperature=0.0), dict(top_k=40, temperature=0.8, seed=7)]


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=["greedy", "sampled"])
def test_generate_response_equals_the_python_api(jvm, sampling):
    model = default_model_path()
    rc, got, err = run_jvm(jvm, "generate", model, **sampling)
    assert rc == 0, (got, err)
    with LlmInference.createFromOptions(None, py_options(model, **sampling)) as llm:
        want = llm.generateResponse(TURNS[0])
        size = llm.sizeInTokens(TURNS[0])
    assert got["SYNC"] == want and want.strip()
    assert got["SIZE"] == str(size)
    # generateResponseAsync: the future's text, the pieces in order, done last and nothing after it,
    # delivered on the bridge's JVM thread
    assert got["FUTURE"] == got["PIECES"] == want
    calls, after_done = map(int, got["CALLS"].split())
    assert calls >= 2 and after_done == 0
    assert got["THREAD"] == "pocketlm-generation"


@pytest.mark.parametrize("name", sorted(BUNDLES))
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=["greedy", "sampled"])
def test_bundles_mediapipe_wrote_answer_as_the_python_api(jvm, name, sampling):
    # MediaPipe's bundler pads before the first zip entry: the bridge opens the bundle by its end record
    model, prompt = FOLDER / name, "the model runs on a phone"
    rc, got, err = run_jvm(jvm, "generate", model, max_tokens=160, turns=(prompt, ""), **sampling)
    assert rc == 0, (got, err)
    with LlmInference.createFromOptions(None, py_options(model, max_tokens=160, **sampling)) as llm:
        want = llm.generateResponse(prompt)
        size = llm.sizeInTokens(prompt)
    assert got["SYNC"] == want and got["FUTURE"] == want
    assert want or name == "gemma-tiny.task"  # gemma-tiny's answers are all whitespace, stripped as on Android
    assert got["SIZE"] == str(size)


@pytest.mark.parametrize("name", ["llama-tiny-int8.task", "llama-tiny-int8.litertlm"])
def test_files_litert_runs_answer_as_the_python_api(jvm, name, monkeypatch):
    # the bridge's libpocketlm runs the TFLite graph on LiteRT, found where the Python package has it
    pytest.importorskip("litert_lm", reason="the LiteRT runtime (pip install pocketlm[litert])")
    from pocketlm.engine.litert import litert_library
    from tests.fixtures.litert import FOLDER as LITERT

    monkeypatch.setenv("POCKETLM_LITERT_LIB", litert_library())
    path, prompt = LITERT / name, "Hello world"
    rc, got, err = run_jvm(jvm, "generate", path, max_tokens=64, turns=(prompt, ""))
    assert rc == 0, (got, err)
    raw = name.endswith(".litertlm")  # its Jinja template is no family the C text path recognises
    with LlmInference.createFromOptions(None, py_options(path, max_tokens=64)) as llm:
        if raw:
            s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1)
                                                      .setPromptTemplates(PromptTemplates()).build())
            s.addQueryChunk(prompt)
            want = s.generateResponse()
        else:
            want = llm.generateResponse(prompt)
    assert got["SYNC"] == want and want


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=["greedy", "sampled"])
def test_sessions_clone_and_overlap_as_the_python_api(jvm, sampling):
    model = default_model_path()
    rc, got, err = run_jvm(jvm, "session", model, **sampling)
    assert rc == 0, (got, err)
    so = LlmInferenceSessionOptions.builder().setTopK(sampling["top_k"]).setTemperature(sampling["temperature"]) \
        .setRandomSeed(sampling.get("seed", 0)).build()
    with LlmInference.createFromOptions(None, py_options(model, **sampling)) as llm:
        s = LlmInferenceSession.createFromOptions(llm, so)
        s.addQueryChunk(TURNS[0])
        first = s.generateResponse()
        c = s.cloneSession()
        c.addQueryChunk(TURNS[1])
        clone_second = c.generateResponse()
        s.addQueryChunk(TURNS[1])
        second = s.generateResponse()
        raw = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1)
                                                    .setPromptTemplates(PromptTemplates()).build())
        raw.addQueryChunk(TURNS[0])
        raw_text = raw.generateResponse()
        size = s.sizeInTokens(TURNS[0])
    assert (got["SYNC1"], got["ASYNC2"], got["SYNC2"], got["RAW"]) == (first, clone_second, second, raw_text)
    assert got["PIECES2"] == got["ASYNC2"]
    assert got["SIZE"] == str(size)
    assert "still processing" in got["OVERLAP"]  # IllegalStateException, as on Android


def test_a_thousand_create_close_cycles_leave_nothing(jvm):
    rc, got, err = run_jvm(jvm, "cycles", default_model_path(), max_tokens=1000)
    assert rc == 0, (got, err)
    assert got["LIVE"] == "0"  # every engine, session, clone and async reference freed
    before, after = map(int, got["RSS"].split())
    assert after - before < 16 * 1024, f"RSS grew from {before} kB to {after} kB over 950 cycles"


def test_close_stops_a_running_generation(jvm):
    rc, got, err = run_jvm(jvm, "closeRunning", default_model_path(), max_tokens=512)
    assert rc == 0, (got, err)
    assert got["CLOSED"] == "true" and "closed" in got["AFTER"]
    assert got["LIVE_ENGINE_ONLY"] == "1"  # the session and its generation are gone; the engine is still open


def test_missing_or_corrupt_model_throws_with_the_file_named(jvm, tmp_path):
    missing = tmp_path / "absent.gguf"
    rc, got, _ = run_jvm(jvm, "generate", missing)
    assert rc != 0 and got["ERROR"].startswith("com.google.mediapipe.framework.MediaPipeException") \
        and str(missing) in got["ERROR"]
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(default_model_path().read_bytes()[:5000])
    rc, got, _ = run_jvm(jvm, "generate", bad)
    assert rc != 0 and str(bad) in got["ERROR"]


def test_a_profile_too_small_is_refused_with_pythons_figures(jvm):
    from pocketlm import device
    from pocketlm.device import DeviceMemoryError

    model = default_model_path()
    with pytest.raises(DeviceMemoryError) as python:
        LlmInference.createFromOptions(device.context("low_end_4gb"), py_options(model, max_tokens=200000))
    rc, got, _ = run_jvm(jvm, "generate", model, max_tokens=200000, profile="low_end_4gb")
    assert rc != 0 and got["ERROR"] == f"pocketlm.DeviceMemoryException: {python.value}"
    rc, got, _ = run_jvm(jvm, "generate", model, max_tokens=256, profile="low_end_4gb")
    assert rc == 0 and got["SYNC"]


def test_the_android_sample_runs_on_the_host(jvm, tmp_path):
    """examples/android/InferenceModel.kt builds with the README's commands and chats."""
    cp = jvm[jvm.index("-cp") + 1].split(":", 1)[1]
    jar = tmp_path / "chat.jar"
    example = Path(__file__).parents[2] / "examples" / "android" / "InferenceModel.kt"
    subprocess.run(["kotlinc", str(example), "-cp", cp, "-include-runtime", "-d", str(jar)], check=True,
                   capture_output=True, timeout=600)
    out = subprocess.run([jvm[0], jvm[1], "-cp", f"{jar}:{cp}", "InferenceModelKt", str(default_model_path()),
                          "pixel_8"], input="What is the capital of France?\n/reset\nAnd of Italy?\n",
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    answers = out.stdout.split("> ")[1:]
    assert len(answers) == 2 and all(len(a.splitlines()[1:]) and a.split("\n", 1)[1].strip() for a in answers)
    assert "of 3584 MB (Google Pixel 8" in out.stderr


def test_valgrind_finds_no_leak_of_the_bridge(jvm, tmp_path):
    """Create/session/clone/close cycles under valgrind: no block definitely lost
    whose allocation passes through libpocketlm or the JNI layer (the JVM's own
    start-up allocations are valgrind's to report, not ours)."""
    import re

    if shutil.which("valgrind") is None:
        if os.environ.get("POCKETLM_REQUIRE_JVM") == "1":
            pytest.fail("POCKETLM_REQUIRE_JVM=1 but valgrind is not installed")
        pytest.skip("valgrind is not installed")
    log = tmp_path / "valgrind.log"
    cmd = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite", "--smc-check=all-non-file",
           f"--log-file={log}", jvm[0], "-Xint", "-XX:+UseSerialGC", *jvm[1:], "cycles", str(default_model_path()),
           "3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "LIVE 0" in out.stdout, out.stdout + out.stderr
    records = [r for r in re.split(r"\n==\d+== \n", log.read_text()) if "definitely lost in" in r]
    ours = [r for r in records if re.search(r"libpocketlm|pocketlm_jni|plm_|Java_pocketlm|LlmInferenceEngine", r)]
    assert not ours, "\n\n".join(ours)


def test_lora_path_from_kotlin_equals_the_python_api(jvm, tmp_path):
    """setLoraPath on LlmInferenceOptions (its own responses, and sessions that
    name no adapter inherit it) and on a session's options, through the JNI
    bridge, against pocketlm's Python API with the same converted adapter; a
    model file given as the adapter is refused at creation."""
    pytest.importorskip("peft")
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from tests.fixtures import checkpoints
    from tests.fixtures.lora import peft_adapter
    from tests.fixtures.tokenizers import train_byte_level_bpe

    folder = checkpoints.llama(tmp_path / "ckpt", seed=3, vocab_size=320, eos_token_id=0, bos_token_id=1)
    train_byte_level_bpe(folder, vocab_size=320)
    adapter = peft_adapter(folder, tmp_path / "adapter", seed=5)
    model = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "out"),
                                                lora_ckpt=str(adapter), lora_rank=4))
    lora = tmp_path / "out" / "lora.tflite"
    prompt = "the model runs on a phone"
    rc, got, err = run_jvm(jvm, "lora", model, max_tokens=48, turns=(prompt, str(lora)))
    assert rc == 0, (got, err)
    opts = py_options(model, max_tokens=48).toBuilder().setLoraPath(str(lora)).build()
    with LlmInference.createFromOptions(None, opts) as llm:
        assert got["IMPLICIT"] == llm.generateResponse(prompt).encode().hex()
        with_lora = LlmInferenceSession.createFromOptions(
            llm, LlmInferenceSessionOptions.builder().setTopK(1).setTemperature(0.0).setLoraPath(str(lora)).build())
        with_lora.addQueryChunk(prompt)
        assert got["SESSION"] == with_lora.generateResponse().encode().hex() == got["IMPLICIT"]
        inheriting = LlmInferenceSession.createFromOptions(
            llm, LlmInferenceSessionOptions.builder().setTopK(1).setTemperature(0.0).build())
        inheriting.addQueryChunk(prompt)
        assert got["INHERITED"] == inheriting.generateResponse().encode().hex() == got["IMPLICIT"]
    with LlmInference.createFromOptions(None, py_options(model, max_tokens=48)) as llm:
        base = LlmInferenceSession.createFromOptions(
            llm, LlmInferenceSessionOptions.builder().setTopK(1).setTemperature(0.0).build())
        base.addQueryChunk(prompt)
        assert got["BASE"] == base.generateResponse().encode().hex() != got["INHERITED"]
    assert got["BAD"].startswith("MediaPipeException") and "not a LoRA adapter (it is a model file)" in got["BAD"]
    assert got["LIVE"] == "0"


def test_a_lone_surrogate_from_kotlin_is_refused_naming_its_index(jvm):
    """A broken UTF-16 string, "ab\\uD800c" (which StandardCharsets.UTF_8 would turn
    into "ab?c"), throws IllegalArgumentException at every text entry point, and at
    the bridge for any caller of NativeBridge, in the Python API's words; text with
    emoji (surrogate pairs) still answers as the Python API does."""
    model = default_model_path()
    emoji = "Name this: \U0001f4f1 \U0001f600 日本"
    rc, got, err = run_jvm(jvm, "text", model, max_tokens=64, turns=("-", emoji.encode().hex()))  # the JVM's
    # arguments cannot carry a lone surrogate, nor, in every locale, emoji: ApiCheck builds "ab\\uD800c" itself
    assert rc == 0, (got, err)
    tail = "lone surrogate U+D800 at index 2 is not valid text (a broken UTF-16 string?)"
    for key, name in [("GENERATE", "inputText"), ("ASYNC", "inputText"), ("SIZE", "text"),
                      ("TEMPLATE", "promptTemplates.userPrefix"), ("CHUNK", "inputText"), ("SESSION_SIZE", "text"),
                      ("BRIDGE_CHUNK", "inputText"), ("BRIDGE_TEMPLATES", "promptTemplates.userSuffix"),
                      ("BRIDGE_LORA", "loraPath")]:
        assert got[key] == f"{name}: {tail}", key
    with LlmInference.createFromOptions(None, py_options(model, max_tokens=64)) as llm:
        with pytest.raises(ValueError, match=re.escape(f"inputText: {tail}")):
            llm.generateResponse("ab\ud800c")  # the same words from Python
        s = LlmInferenceSession.createFromOptions(
            llm, LlmInferenceSessionOptions.builder().setTopK(1).setTemperature(0.0).build())
        assert got["EMOJI_SIZE"] == str(s.sizeInTokens(emoji))
        s.addQueryChunk(emoji)
        assert got["EMOJI"] == s.generateResponse().encode().hex()
    assert got["LIVE"] == "1"  # the LlmInference's engine only: no refused call left a session behind


CHAT_TEMPLATES = Path(__file__).parent.parent / "fixtures" / "chat_templates"
# the templates of the models phones run now, with their BOS, EOS and other special tokens
TEMPLATE_TOKENS = {
    "google-gemma-3-4b-it.jinja": ("<bos>", "<end_of_turn>", ["<start_of_turn>"]),
    "Qwen-Qwen2.5-7B-Instruct.jinja": (None, "<|im_end|>", []),
    "Qwen-Qwen3-0.6B.jinja": (None, "<|im_end|>", []),
    "microsoft-Phi-3.5-mini-instruct.jinja": ("<s>", "<|end|>", ["<|user|>", "<|assistant|>", "<|system|>"]),
    "microsoft-Phi-4-mini-instruct.jinja": (None, "<|end|>", ["<|user|>", "<|assistant|>", "<|system|>"]),
    "upstage-SOLAR-10.7B-Instruct-v1.0.jinja": ("<s>", "</s>", []),
}


@pytest.mark.parametrize("name", sorted(TEMPLATE_TOKENS))
def test_kotlin_wraps_the_prompt_with_the_files_chat_template_as_python(jvm, name, tmp_path):
    """A GGUF converted from a transformers 5 checkpoint with a real template: Kotlin's LlmInference (the JNI
    bridge over the C API's template families) answers as the Python API, and not as the unwrapped prompt."""
    transformers = pytest.importorskip("transformers")
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from tests.fixtures import checkpoints
    from tests.fixtures.tokenizers import train_byte_level_bpe

    bos, eos, extra = TEMPLATE_TOKENS[name]
    bpe = train_byte_level_bpe(tmp_path / "bpe", vocab_size=320) / "tokenizer.json"
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(bpe), bos_token=bos, eos_token=eos,
                                               extra_special_tokens={f"t{i}": t for i, t in enumerate(extra)})
    tok.chat_template = (CHAT_TEMPLATES / name).read_text()
    folder = checkpoints.llama(tmp_path / "ckpt", vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, max_position_embeddings=512)
    tok.save_pretrained(folder)
    model = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "out"),
                                                is_quantized=False))
    prompt = TURNS[0]
    rc, got, err = run_jvm(jvm, "generate", model, max_tokens=192, turns=(prompt, ""))
    assert rc == 0, (got, err)
    with LlmInference.createFromOptions(None, py_options(model, max_tokens=192)) as llm:
        want = llm.generateResponse(prompt)
        raw = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1)
                                                    .setPromptTemplates(PromptTemplates()).build())
        raw.addQueryChunk(prompt)
        unwrapped = raw.generateResponse()
    # the tiny model writes any byte: run_jvm reads the output with universal newlines (\r becomes \n), a record
    # ends at the first \x1e, and the bridge hands text over as C strings, as MediaPipe's C API does (a NUL ends it)
    as_read = want.replace("\r\n", "\n").replace("\r", "\n").split("\x1e")[0].split("\x00")[0]
    assert got["SYNC"] == as_read and want != unwrapped
