"""`pocketlm convert --to litertlm`: litert-torch's HF exporter driven on the
tiny Llama of tests/fixtures/litert (sp_checkpoint) with the committed
llama-tiny-int8.litertlm's settings gives that file's sections byte for byte
(only the header's creation time differs), `pocketlm info` reports the
prefill lengths and KV cache asked for, and the file runs greedily to what
LiteRT-LM answers. What does not apply is refused by name, before any
export; a failed export leaves nothing behind; fit refuses a LiteRT file
saying what describes it."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import time

import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions
from pocketlm.cli import main
from pocketlm.genai import litert_export
from pocketlm.tasks.llm_inference_session import PromptTemplates
from tests.fixtures import litert as fx

needs_exporter = pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None,
                                    reason="litert-torch's exporter (pip install 'pocketlm[litert-convert]')")
needs_runtime = pytest.mark.skipif(importlib.util.find_spec("litert_lm") is None,
                                   reason="the LiteRT runtime (pip install 'pocketlm[litert]')")
FIXTURE = "llama-tiny-int8.litertlm"  # sp_checkpoint, dynamic_wi8_afp32, prefill 8 and 32, a 256-token cache
OUT = 32  # output tokens of the recorded answers


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(the .litertlm `pocketlm convert --to litertlm` wrote, its stdout, its stderr) for sp_checkpoint."""
    tmp = tmp_path_factory.mktemp("litert-export")
    ckpt = fx.sp_checkpoint(tmp / "ckpt")
    t0 = time.perf_counter()
    rc, out, err = run_cli("convert", "--to", "litertlm", "--input-ckpt", str(ckpt), "--output-dir", str(tmp / "out"),
                           "--quantize", "dynamic_wi8_afp32", "--prefill-lengths",
                           ",".join(map(str, fx.PREFILL_LENGTHS)), "--kv-cache-length", str(fx.CACHE_LENGTH))
    assert rc == 0, err[-3000:]
    print(f"exported in {time.perf_counter() - t0:.1f} s")
    return tmp / "out" / "model.litertlm", out, err


def same_sections(a, b) -> bool:
    """The two .litertlm files hold the same sections, byte for byte, with the same items."""
    from pocketlm.model.litertlm_file import read_litertlm

    fa, fb = read_litertlm(a, read_graphs=False), read_litertlm(b, read_graphs=False)
    da, db = a.read_bytes(), b.read_bytes()
    return len(fa.sections) == len(fb.sections) and all(
        (x.type_name, x.items, da[x.offset:x.offset + x.size]) == (y.type_name, y.items, db[y.offset:y.offset + y.size])
        for x, y in zip(fa.sections, fb.sections))


@needs_exporter
def test_convert_writes_the_file_and_only_it(exported):
    path, out, err = exported
    assert out.startswith(f"wrote {path}") and path.stat().st_size > 100_000
    assert [p.name for p in path.parent.iterdir()] == ["model.litertlm"]  # the exporter's work folder is gone
    assert "litert-torch" in err and "Quantize model" in err and "Package model" in err  # its stages, as they end
    recorded = fx.recorded()
    if recorded["versions"]["litert-torch"] == litert_export.exporter_version():
        # the same exporter, checkpoint and settings make the committed file: only its creation time differs
        assert same_sections(path, fx.FOLDER / FIXTURE)
        assert path.stat().st_size == recorded["files"][FIXTURE]["bytes"]


@needs_exporter
def test_info_reports_the_lengths_asked_for(exported):
    rc, out, _ = run_cli("info", str(exported[0]))
    assert rc == 0
    rows = dict(re.findall(r"^(\S[^\n]*?)\s{2,}(\S[^\n]*)$", out, re.M))
    assert rows["prefill lengths"] == "8, 32 tokens per run"
    assert rows["KV cache"].startswith("2 layers, 256 positions")
    assert rows["max tokens"].startswith("256")
    assert "int8 per-channel" in rows["weights"]


def raw_greedy(path, prompt: str, max_tokens: int) -> tuple[str, int]:
    opts = LlmInferenceOptions.builder().setModelPath(str(path)).setMaxTokens(max_tokens).build()
    with LlmInference.createFromOptions(None, opts) as llm:
        s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1)
                                                  .setPromptTemplates(PromptTemplates()).build())
        s.addQueryChunk(prompt)
        return s.generateResponse(), s.sizeInTokens(prompt)


def litert_lm_greedy(path, prompt: str, tmp_path) -> str:
    import litert_lm

    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
    (tmp_path / "cache").mkdir()
    engine = litert_lm.Engine(str(path), backend=litert_lm.Backend.CPU(thread_count=1),
                              cache_dir=str(tmp_path / "cache"))
    try:
        s = engine.create_session(apply_prompt_template=False, sampler_config=litert_lm.SamplerConfig(top_k=1),
                                  max_output_tokens=OUT)
        s.run_prefill([prompt])
        text = s.run_decode().texts[0]
        s.close()
        return text
    finally:
        engine.close()


@needs_exporter
@needs_runtime
def test_the_file_runs_to_litert_lms_answer(exported, tmp_path):
    path = exported[0]
    rec = fx.recorded()["files"][FIXTURE]["litert_lm"]["prompts"][0]
    # litert_lm's Session: [start] + the prompt's tokens, then OUT tokens sampled with top_k 1
    text, n = raw_greedy(path, rec["prompt"], len(rec["prompt_ids"]) + OUT)
    assert n == len(rec["prompt_ids"]) - 1
    if same_sections(path, fx.FOLDER / FIXTURE):  # the committed file's graph: its recorded answer, and its text here
        want = rec["session"]
        assert text == raw_greedy(fx.FOLDER / FIXTURE, rec["prompt"], len(rec["prompt_ids"]) + OUT)[0]
    else:  # another exporter's graph: LiteRT-LM's answer on this file
        want = litert_lm_greedy(path, rec["prompt"], tmp_path)
    assert text == want.lstrip()  # the Python API strips a response's leading whitespace, as Android does


@needs_exporter
def test_a_failed_export_leaves_nothing_and_says_why(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(dict(model_type="llama")))  # no weights, no tokenizer
    rc, _, err = run_cli("convert", "--to", "litertlm", "--input-ckpt", str(ckpt), "--output-dir",
                         str(tmp_path / "out"), "--prefill-lengths", "8", "--cache-length", "64")
    assert rc == 2 and err.count("pocketlm convert: error: litert-torch's exporter failed") == 1
    assert "Traceback" in err  # the tail of the exporter's own output says why
    assert list((tmp_path / "out").iterdir()) == []


@needs_exporter
def test_a_wrong_recipe_is_refused_naming_the_valid_ones(tmp_path):
    ckpt = fx.sp_checkpoint(tmp_path / "ckpt")
    rc, _, err = run_cli("convert", "--to", "litertlm", "--input-ckpt", str(ckpt), "--output-dir",
                         str(tmp_path / "out"), "--quantize", "int8")
    assert rc == 2
    assert "unknown quantization recipe 'int8'" in err
    for name in ("none", "dynamic_wi8_afp32", "dynamic_wi4_afp32", "weight_only_wi8_afp32"):
        assert re.search(rf"\b{name}\b", err), name
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_a_checkpoint_that_is_no_local_folder_is_refused(tmp_path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    for ckpt, says in ((file, "is a file"), ("google/gemma-3-270m", "does not download"),
                       (tmp_path / "missing", "no such checkpoint folder"), (tmp_path, "no config.json")):
        rc, _, err = run_cli("convert", "--to", "litertlm", "--input-ckpt", str(ckpt), "--output-dir",
                             str(tmp_path / "out"))
        assert rc == 2 and says in err, (ckpt, err)
    assert not (tmp_path / "out").exists()


def test_options_of_the_other_target_are_refused_by_name(tmp_path):
    rc, _, err = run_cli("convert", "--to", "litertlm", "--input-ckpt", str(tmp_path), "--output-dir", str(tmp_path),
                         "--float", "--feedforward-quant-bits", "8")
    assert rc == 2 and "--float, --feedforward-quant-bits do not apply to --to litertlm" in err
    rc, _, err = run_cli("convert", "--input-ckpt", str(tmp_path), "--output-dir", str(tmp_path), "--quantize", "none",
                         "--kv-cache-length", "0")
    assert rc == 2
    assert "--quantization-recipe (--quantize), --cache-length (--kv-cache-length) do not apply to --to gguf" in err


def test_without_litert_torch_the_error_says_what_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "litert_torch" else real(name, *a))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"pip install 'pocketlm\[litert-convert\]'"):
        litert_export.export_litertlm(ckpt, tmp_path / "out")


def test_the_schema_stand_in_is_given_only_without_tensorflow(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    env = litert_export._environment(tmp_path / "a")
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path / "a")
    shim = tmp_path / "a/tensorflow/lite/python/schema_py_generated.py"
    assert "ai_edge_litert.schema_py_generated" in shim.read_text()
    assert env["HF_HUB_OFFLINE"] == "1" and env["PYTHONHASHSEED"] == "0"
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "tensorflow" else real(name, *a))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert "PYTHONPATH" not in litert_export._environment(tmp_path / "b") and not (tmp_path / "b").exists()


def test_fit_estimates_an_exported_file_on_litert_with_its_cache():
    rc, out, err = run_cli("fit", "--model", str(fx.FOLDER / FIXTURE), "--max-tokens", "256")
    assert rc in (None, 0) and not err
    assert out.startswith(f"{FIXTURE}: litert, int8 weights, KV cache 256,")
    rc, out, err = run_cli("fit", "--model", str(fx.FOLDER / FIXTURE), "--max-tokens", "1024")
    assert rc == 2 and not out and "fixed in the graph at 256 positions" in err
