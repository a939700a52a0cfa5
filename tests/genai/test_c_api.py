"""MediaPipe's C API (llm_inference_engine.h) from a C program that knows
nothing of pocketlm: PredictSync, PredictAsync on a clone and SizeInTokens
give what the Python API gives for the same model and options, for a GGUF
and for a .task; a missing or corrupt model is a non-zero status with a
message naming the file; text that is not UTF-8 is refused naming the byte."""

import contextlib
import io
import shutil
import subprocess

import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.builtin import default_model_path
from pocketlm.cli import main
from tests.fixtures.mediapipe import BUNDLES, FOLDER

pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")
SOURCE = __import__("pathlib").Path(__file__).parents[1] / "c" / "mp_api_check.c"
TURNS = ("Name the capital of France.", "And of Italy?")


def build_program(exe, source=SOURCE):
    """Compiles source (tests/c/mp_api_check.c) at exe against the installed libpocketlm."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["config", "--cflags", "--libs"]) == 0
    flags = buf.getvalue().split()
    subprocess.run([CC, str(source), "-o", str(exe), *flags, "-lpthread"], check=True)
    return exe


def run_c(program, model, max_tokens=256, top_k=1, temperature=0.0, seed=0, turns=TURNS):
    out = subprocess.run([str(program), str(model), str(max_tokens), str(top_k), str(temperature), str(seed), *turns],
                         capture_output=True, timeout=120)
    # decoded here, not by text=True, whose universal newlines would turn a generated "\r" into "\n"
    records = [r for r in out.stdout.decode("utf-8").split("\x1e") if r]
    return out.returncode, dict(r.split(" ", 1) if " " in r else (r, "") for r in records)


def run_python(model, max_tokens=256, top_k=1, temperature=0.0, seed=0, turns=TURNS):
    opts = LlmInferenceOptions.builder().setModelPath(str(model)).setMaxTokens(max_tokens).build()
    with LlmInference.createFromOptions(None, opts) as llm:
        so = LlmInferenceSessionOptions.builder().setTopK(top_k).setTemperature(temperature) \
            .setRandomSeed(seed).build()
        s = LlmInferenceSession.createFromOptions(llm, so)
        size = s.sizeInTokens(turns[0])
        s.addQueryChunk(turns[0])
        if turns[1] == "-":  # one turn, answered by the session and by a clone made before it
            c = s.cloneSession()
            return dict(SIZE=str(size), SYNC1=s.generateResponse(), ASYNC2=c.generateResponse())
        first = s.generateResponse()
        if not turns[1]:
            return dict(SIZE=str(size), SYNC1=first)
        c = s.cloneSession()
        c.addQueryChunk(turns[1])
        clone_second = c.generateResponse()
        s.addQueryChunk(turns[1])
        second = s.generateResponse()
        return dict(SIZE=str(size), SYNC1=first, ASYNC2=clone_second, SYNC2=second)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The built-in GGUF (llama.cpp's, with a ChatML template), and a tiny
    Llama in a .task with MediaPipe's METADATA: start and stop tokens, prompt
    prefix and suffix, and a tokenizer.json entry."""
    from pocketlm.genai.bundler import BundleConfig, create_bundle
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from tests.fixtures import checkpoints
    from tests.fixtures.tokenizers import train_byte_level_bpe

    base = tmp_path_factory.mktemp("task")
    folder = checkpoints.llama(base / "ckpt", vocab_size=320, eos_token_id=0, bos_token_id=1,
                               max_position_embeddings=512)
    train_byte_level_bpe(folder, vocab_size=320)
    gguf = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(base / "out"),
                                               is_quantized=True))
    task = base / "tiny.task"
    create_bundle(BundleConfig(tflite_model=str(gguf), tokenizer_model=str(folder / "tokenizer.json"),
                               start_token="<|im_start|>", stop_tokens=["<|endoftext|>"], output_filename=str(task),
                               prompt_prefix="<|im_start|>user ", prompt_suffix=" model:"))
    return {"gguf": default_model_path(), "task": task, **{name: FOLDER / name for name in BUNDLES}}


# the .task files MediaPipe's own bundler wrote (tests/fixtures/mediapipe.py), which pad before the first entry
@pytest.mark.parametrize("kind", ["gguf", "task", *sorted(BUNDLES)])
@pytest.mark.parametrize("sampling", [dict(top_k=1, temperature=0.0), dict(top_k=40, temperature=0.8, seed=7)],
                         ids=["greedy", "sampled"])
def test_the_c_api_answers_as_the_python_api(program, models, kind, sampling):
    # the tiny bundled model never says its stop token: its one turn runs to maxTokens, so the .task's
    # clone answers that turn (PredictAsync) beside the session (PredictSync) instead of a second one
    turns = TURNS if kind == "gguf" else ("the model runs on a phone", "-")
    rc, got = run_c(program, models[kind], turns=turns, **sampling)
    assert rc == 0, got
    want = run_python(models[kind], turns=turns, **sampling)
    # MediaPipe's C API gives the text as generated; Android's classes (and pocketlm's Python API) strip
    # the leading whitespace of a response's first output
    assert {k: v if k == "SIZE" else v.lstrip() for k, v in got.items() if k in want} == want
    assert got["SYNC1"].strip() or kind in BUNDLES  # a real answer (gemma-tiny's greedy one is all newlines)
    assert got["SYNC1"]
    calls, after_done = map(int, got["CALLS"].split())
    assert calls >= 2 and after_done == 0  # pieces, then done last and nothing after it
    assert "being generated" in got["OVERLAP"]


def test_a_missing_or_corrupt_model_names_the_file(program, tmp_path):
    rc, got = run_c(program, tmp_path / "absent.gguf")
    assert rc != 0 and str(tmp_path / "absent.gguf") in got["ERROR"]
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(default_model_path().read_bytes()[:5000])
    rc, got = run_c(program, bad)
    assert rc != 0 and str(bad) in got["ERROR"]


@pytest.fixture(scope="module")
def text_program(tmp_path_factory):
    return build_program(tmp_path_factory.mktemp("capi") / "mp_text_check", SOURCE.parent / "mp_text_check.c")


@pytest.mark.parametrize("text,detail", [
    (b"ab\xed\xa0\x80c", r"bytes ED A0 80 at byte offset 2 encode the UTF-16 surrogate U\+D800 \(CESU-8"),
    (b"\xf0\x9f\x98\x80\xed\xbf\xbf", r"bytes ED BF BF at byte offset 4 encode the UTF-16 surrogate U\+DFFF"),
    (b"ab\xffc", r"byte 0xFF at byte offset 2 is not part of a valid sequence"),
    (b"a\xc0\xafb", r"byte 0xC0 at byte offset 1 is not part of a valid sequence"),  # an overlong '/'
    ("日本".encode()[:5], r"byte 0xE6 at byte offset 3 starts a sequence cut short"),
])
def test_text_that_is_not_utf8_is_refused_naming_the_byte_offset(text_program, text, detail):
    """AddQueryChunk, SizeInTokens and set_prompt_templates refuse ill-formed UTF-8
    from a C caller (a surrogate as CESU-8 or Java's modified UTF-8 writes it, a
    stray byte, an overlong form, a cut sequence) instead of tokenizing U+FFFD."""
    import re

    def run(arg):
        out = subprocess.run([str(text_program), str(default_model_path()), arg], capture_output=True, timeout=120)
        assert out.returncode == 0, out
        records = [r.decode() for r in out.stdout.split(b"\x1e") if r]
        return {k: (int(st), msg) for k, st, msg in (r.split(" ", 2) for r in records)}

    got = run(text)
    for call, name, what in [("SIZE", "SizeInTokens", "input"), ("ADD", "AddQueryChunk", "input"),
                             ("TEMPLATES", "set_prompt_templates", "user_prefix")]:
        status, msg = got[call]
        assert status < 0 and re.match(rf"{name}: {what} is not valid UTF-8: {detail}", msg), (call, msg)
    valid = "ab\U0001f600c 日本".encode()
    ok = run(valid)
    assert ok["SIZE"][0] > 0 and ok["ADD"] == (0, "") and ok["TEMPLATES"] == (0, "")
