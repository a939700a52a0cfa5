"""The two engines behind the task API give the same text: greedy, and
sampled with a seed (topK 40, temperature 0.8, topP 0.9); POCKETLM_ENGINE
chooses between them and refuses what it cannot give."""

import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.tasks import PromptTooLongError
from pocketlm.engine.base import NativeEngineUnavailable, engine_kind
from tests.tasks.conftest import PROMPT

pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)


def _run(monkeypatch, kind, path, **session_kw):
    monkeypatch.setenv("POCKETLM_ENGINE", kind)
    opts = LlmInferenceOptions.builder().setModelPath(str(path)).setMaxTokens(96).build()
    with LlmInference.createFromOptions(None, opts) as llm:
        assert llm.engine.kind == kind
        b = LlmInferenceSessionOptions.builder()
        for k, v in session_kw.items():
            getattr(b, "set" + k[0].upper() + k[1:])(v)
        s = LlmInferenceSession.createFromOptions(llm, b.build())
        s.addQueryChunk(PROMPT)
        first = s.generateResponse()
        try:  # a second turn on the same cache, where the first left room for it
            s.addQueryChunk("and then")
            second = s.generateResponse()
        except PromptTooLongError as e:
            second = str(e)
        return first, second, s.last_stats.prefill_tokens, s.last_stats.stop_reason


@pytest.mark.parametrize("opts", [dict(topK=1), dict(topK=40, temperature=0.8, topP=0.9, randomSeed=7)],
                         ids=["greedy", "sampled"])
def test_native_and_python_engines_give_the_same_text(monkeypatch, bundle, opts):
    path, _, _ = bundle
    native = _run(monkeypatch, "native", path, **opts)
    python = _run(monkeypatch, "python", path, **opts)
    assert native == python
    assert native[0]  # something was generated


def test_engine_choice(monkeypatch):
    monkeypatch.setenv("POCKETLM_ENGINE", "python")
    assert engine_kind() == "python"
    monkeypatch.setenv("POCKETLM_ENGINE", "native")
    assert engine_kind() == "native"
    monkeypatch.setenv("POCKETLM_ENGINE", "tflite")
    with pytest.raises(ValueError, match="'native' or 'python'"):
        engine_kind()


def test_native_asked_for_but_missing_is_an_error(monkeypatch):
    import pocketlm.engine.base as base

    monkeypatch.setenv("POCKETLM_ENGINE", "native")
    monkeypatch.setattr(base, "native_available", lambda: (False, "libpocketlm.so not found"))
    with pytest.raises(NativeEngineUnavailable, match="libpocketlm.so not found"):
        engine_kind()
    monkeypatch.delenv("POCKETLM_ENGINE")
    assert engine_kind() == "python"  # unasked, the Python engine is the fallback


def test_native_engine_takes_the_c_text_path(model_dir, bundle, tmp_path):
    """A native engine encodes and decodes with libpocketlm's tokenizer for a
    checkpoint folder, a GGUF and a .task (its TOKENIZER_MODEL entry), and
    its ids equal the Python tokenizer's."""
    from pocketlm.engine.base import Engine
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from pocketlm.kernels.native import CTokenizer

    path, _, _ = bundle
    gguf = convert_checkpoint(ConversionConfig(str(model_dir), "safetensors", None, "cpu", str(tmp_path),
                                               is_quantized=False))
    text = PROMPT + " — ünïcode 日本語 \t\n  spaces <|endoftext|>"
    for source in (model_dir, path, gguf):
        native, python = Engine(source, 32, engine="native"), Engine(source, 32, engine="python")
        assert isinstance(native.tokenizer, CTokenizer), native.text_path_note
        assert native.tokenizer.encode(text) == python.tokenizer.encode(text)
        assert native.tokenizer.decode(python.tokenizer.encode(text)) == python.tokenizer.decode(
            python.tokenizer.encode(text))
        assert (native.bos_id, native.add_bos, native.stop_ids) == (python.bos_id, python.add_bos, python.stop_ids)
