"""libpocketlm's LiteRT executor (native/src/litert/) against LiteRT itself:
the logits of the engine's sessions over a TFLite LLM graph are held
against ai_edge_litert's Interpreter driving the same signatures from
Python the way LiteRT-LM drives them (tools/make_litert_fixtures.py's loop,
caches fed back whole), and greedy generation through plm_session_generate
against the tokens litert_lm answered (tests/fixtures/litert/fixtures.json).
Skipped where litert_lm (pip install pocketlm[litert]) is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("litert_lm")
interpreter = pytest.importorskip("ai_edge_litert.interpreter")

from pocketlm.errors import ModelFileError  # noqa: E402
from pocketlm.kernels import native  # noqa: E402
from pocketlm.engine.native import NativeModel, NativeTokens  # noqa: E402
from pocketlm.sampling import Sampler  # noqa: E402

FOLDER = Path(__file__).resolve().parents[1] / "fixtures" / "litert"
TFLITE = FOLDER / "llama-tiny-int8.tflite"
TOKENIZER = FOLDER / "llama-tiny.tokenizer.model"
RECORDED = json.loads((FOLDER / "fixtures.json").read_text(encoding="utf-8"))
CACHE = 256
# the interpreter's XNNPack and the one in liblitert-lm.so are builds of different releases
RTOL, ATOL = 1e-5, 1e-4


class Reference:
    """ai_edge_litert's Interpreter over the signatures, as LiteRT-LM drives them:
    prefill chunks (the largest prefill_T that fits, the last one padded; decode
    for tokens no chunk can take without crossing the cache's end), decode for
    logits, the whole output caches fed back as the next run's inputs."""

    def __init__(self, path: Path, threads: int = 1):
        it = interpreter.Interpreter(model_path=str(path), num_threads=threads)
        keys = it.get_signature_list()
        self.lengths = sorted(int(k.split("_")[1]) for k in keys if k.startswith("prefill_"))
        self.runners = {k: it.get_signature_runner(k) for k in keys}
        details = self.runners["decode"].get_input_details()
        self.cache = {k: np.zeros(d["shape"], d["dtype"]) for k, d in details.items() if k.startswith("kv_cache_")}
        self.C = int(details["mask"]["shape"][-1])
        self.pos = 0

    def _mask(self, pos):
        m = np.full((1, 1, len(pos), self.C), np.finfo(np.float32).min, np.float32)
        for i, p in enumerate(pos):
            m[0, 0, i, :p + 1] = 0
        return m

    def _run(self, key, ids, T):
        tokens = np.zeros((1, T), np.int32)
        tokens[0, :len(ids)] = ids
        pos = np.arange(self.pos, self.pos + T, dtype=np.int32)
        out = self.runners[key](tokens=tokens, input_pos=pos, mask=self._mask(pos), **self.cache)
        self.cache = {k: out[k] for k in self.cache}
        self.pos += len(ids)
        return out

    def decode(self, token: int) -> np.ndarray:
        return self._run("decode", [token], 1)["logits"][0, -1]

    def prefill(self, ids) -> None:
        done = 0
        while done < len(ids):
            left = len(ids) - done
            T = next((x for x in reversed(self.lengths) if x <= left), self.lengths[0])
            if self.pos + T > self.C:
                self.decode(ids[done])
                done += 1
                continue
            chunk = ids[done:done + T]
            self._run(f"prefill_{T}", chunk, T)
            done += len(chunk)

    def eval(self, ids) -> np.ndarray:
        """logits after ids: all but the last prefilled, the last decoded"""
        self.prefill(ids[:-1])
        return self.decode(ids[-1])


def tokens_of(n: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return [1] + [int(t) for t in rng.integers(3, 500, n - 1)]


@pytest.fixture(scope="module")
def model() -> NativeModel:
    return NativeModel(native.open_litert_model(TFLITE), None)


def session(model, threads: int = 1, max_tokens: int = CACHE, sampler=None) -> NativeTokens:
    return NativeTokens(model, max_tokens, "F32", sampler=sampler, n_threads=threads)


def test_the_model_reports_the_graphs_shapes_and_prefill_lengths(model):
    assert native.model_is_litert(model.handle)
    assert native.litert_prefill_lengths(model.handle) == [8, 32]
    c = native.lib.plm_model_get_config(model.handle)
    assert (c.vocab_size, c.n_layers, c.n_kv_heads, c.head_dim, c.max_position_embeddings) == (500, 2, 2, 16, CACHE)
    assert native.litert_library() == native.litert_runtime_path()


def test_decode_steps_match_the_interpreter(model):
    ids = tokens_of(12)
    ref = Reference(TFLITE)
    want = np.stack([ref.decode(t) for t in ids])
    got = session(model).eval(ids, all_logits=True)  # every position's logits: decode token by token
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("n", [1, 3, 9, 33, 45, 65])
def test_prefill_then_decode_matches_the_interpreter(model, n):
    """3: one padded prefill_8; 45: prefill_32, prefill_8 and a padded prefill_8; 65: two prefill_32."""
    ids = tokens_of(n, seed=n)
    ref, s = Reference(TFLITE), session(model, threads=2)
    np.testing.assert_allclose(s.eval(ids), ref.eval(ids), rtol=RTOL, atol=ATOL)
    tok = 7
    for _ in range(4):  # tokens after it, each through decode
        np.testing.assert_allclose(s.eval([tok]), ref.decode(tok), rtol=RTOL, atol=ATOL)
        tok = (tok * 31 + 11) % 497 + 3


def test_a_prompt_near_the_cache_end_never_crosses_it(model):
    """250 positions filled, then 4 tokens: a padded prefill_8 at 250 would cross
    position 256, so those go through decode; the last token fills the cache."""
    ids = tokens_of(256, seed=5)
    ref, s = Reference(TFLITE), session(model)
    np.testing.assert_allclose(s.eval(ids[:250]), ref.eval(ids[:250]), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(s.eval(ids[250:255]), ref.eval(ids[250:255]), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(s.eval(ids[255:]), ref.decode(ids[255]), rtol=RTOL, atol=ATOL)
    assert s.size == CACHE
    with pytest.raises(ValueError, match="do not fit"):
        s.add([3])


def test_a_clone_continues_as_the_session_does(model):
    s = session(model)
    s.eval(tokens_of(40, seed=2))
    c = s.clone()
    assert c.size == s.size == 40
    for tok in (5, 77, 301):
        np.testing.assert_array_equal(c.eval([tok]), s.eval([tok]))


def test_greedy_generation_reproduces_litert_lm(model):
    """plm_session_generate with greedy sampling gives litert_lm's tokens for a
    Session without a template: prompt ids [start] + tokens(text)."""
    tok = native.CTokenizer.from_bytes(TOKENIZER.read_bytes(), what=str(TOKENIZER))
    prompts = RECORDED["files"]["llama-tiny-int8.litertlm"]["litert_lm"]["prompts"]
    assert prompts
    for p in prompts:
        assert p["session_matches_interpreter"]
        ids = [1] + tok.encode(p["prompt"])
        assert ids == p["prompt_ids"]
        s = session(model, sampler=Sampler(top_k=1, temperature=0.0))
        s.add(ids)
        got: list[int] = []
        stats = s.generate([2], on_token=lambda t: got.append(t) or len(got) >= 32)
        assert got == p["interpreter_tokens"], p["prompt"]
        assert tok.decode(got) == p["session"]
        assert stats.prefill_tokens == len(ids) and stats.decode_tokens == len(got)


@pytest.mark.parametrize("delay_ms", [0, 0.3, 0.6, 1.0, 2.0])
def test_a_cancel_from_another_thread_leaves_the_session_whole(model, delay_ms):
    """plm_session_cancel from another thread while generate runs: wherever it lands
    (between prefill runs, inside one, at the last prompt token's decode, or in the
    decode loop) what ran stays in the cache, the rest stays pending, and going on
    gives what the uncancelled sequence gives."""
    ids = tokens_of(120, seed=9)
    s = session(model)
    s.add(ids)
    done = threading.Event()

    def cancel_after_delay():
        time.sleep(delay_ms / 1000)
        while not done.is_set():
            native.lib.plm_session_cancel(s.handle)

    worker = threading.Thread(target=cancel_after_delay)
    worker.start()
    generated: list[int] = []
    try:
        stats = s.generate([], on_token=lambda t: generated.append(t) and False)
    finally:
        done.set()
        worker.join()
    assert stats.stop_reason in (2, 3)  # cancelled, or (on a slow run) the cache filled first
    assert s.size == len(ids) + len(generated)
    tail = [7] if s.size < CACHE else []  # a full cache: its last token is still pending
    want = Reference(TFLITE).eval(ids + generated + tail)
    np.testing.assert_allclose(s.eval(tail), want, rtol=RTOL, atol=ATOL)


def test_session_memory_counts_the_caches_of_every_signature(model):
    s = session(model)
    kv = 2 * 2 * (2 * 256 * 16) * 4  # layers x (k, v) x [1, 2, 256, 16] float32
    assert s.memory == model.session_bytes(CACHE, "F32") > 3 * 2 * kv  # in and out, for prefill_8, prefill_32, decode


def graph_range(name: str) -> tuple[int, int]:
    """where the TFLite graph lies in a .litertlm (its TFLiteModel section) or a .task (its stored entry)"""
    if name.endswith(".task"):
        entries, _ = native.task_read(FOLDER / name)
        _, off, size, stored = next(e for e in entries if e[0] == "TF_LITE_PREFILL_DECODE")
        assert stored
        return off, size
    sec = next(x for x in RECORDED["files"][name]["sections"] if x["type"] == "TFLiteModel")
    return sec["begin"], sec["end"] - sec["begin"]


@pytest.mark.parametrize("name", [n for n, f in RECORDED["files"].items() if "litert_lm" in f])
def test_every_litert_file_generates_litert_lms_tokens(name):
    """int8 and F32 weights, SentencePiece and BPE vocabularies, .litertlm sections and .task
    entries: the recorded prompt ids in, litert_lm's greedy tokens out (its stop ids: the
    single-token end ids)."""
    rec = RECORDED["files"][name]["litert_lm"]
    stop = [ids[0] for ids in rec["eos_token_ids"] if len(ids) == 1]
    m = NativeModel(native.open_litert_model(FOLDER / name, *graph_range(name)), None)
    for p in rec["prompts"]:
        assert p["session_matches_interpreter"]
        s = session(m, sampler=Sampler(top_k=1, temperature=0.0))
        s.add(p["prompt_ids"])
        got: list[int] = []
        s.generate(stop, on_token=lambda t: got.append(t) or len(got) >= 32)
        assert got == p["interpreter_tokens"], (name, p["prompt"])


def test_max_tokens_past_the_cache_is_refused_naming_both(model):
    with pytest.raises(ValueError, match=r"max_tokens 300 .*256 positions"):
        session(model, max_tokens=300)


def test_files_that_are_not_llm_graphs_are_refused_by_name():
    with pytest.raises(ModelFileError, match=r"llama-tiny.tokenizer.model.*TFL3"):
        native.open_litert_model(TOKENIZER)
    with pytest.raises(ModelFileError, match=r"gpt2-keras-int8.tflite: no decode signature \(signatures: serving_default\)"):
        native.open_litert_model(FOLDER / "gpt2-keras-int8.tflite")
    with pytest.raises(ModelFileError, match="past the file's end"):
        native.open_litert_model(TFLITE, 16, TFLITE.stat().st_size)


def _patched(tmp_path: Path, where) -> Path:
    """the fixture with the uint32 at where(model) (a byte offset) set to 999"""
    import tflite

    raw = bytearray(TFLITE.read_bytes())
    at = where(tflite.Model.GetRootAs(bytes(raw), 0))
    raw[at:at + 4] = (999).to_bytes(4, "little")
    out = tmp_path / "patched.tflite"
    out.write_bytes(bytes(raw))
    return out


def test_signature_indices_tflite_does_not_check_are_refused_before_it_sees_them(tmp_path):
    """TFLite's verifier passes these and its signature runner would index past its arrays"""
    def subgraph_index(m):
        sd = m.SignatureDefs(2)
        return sd._tab.Pos + sd._tab.Offset(12)

    def tensor_index(m):
        tm = m.SignatureDefs(2).Inputs(1)
        return tm._tab.Pos + tm._tab.Offset(6)

    pytest.importorskip("tflite")
    with pytest.raises(ModelFileError, match="signature 2 names subgraph 999 of 14"):
        native.open_litert_model(_patched(tmp_path, subgraph_index))
    with pytest.raises(ModelFileError, match="signature 2's input 1 is not a tensor of its subgraph"):
        native.open_litert_model(_patched(tmp_path, tensor_index))


def test_a_model_inside_a_bundle_opens_from_its_range(model):
    """the .task's stored TF_LITE_PREFILL_DECODE entry, at an offset that is not 16-byte aligned"""
    entries, _ = native.task_read(FOLDER / "llama-tiny-int8.task")
    name, off, size, stored = next(e for e in entries if e[0] == "TF_LITE_PREFILL_DECODE")
    assert stored and off % 16
    inner = NativeModel(native.open_litert_model(FOLDER / "llama-tiny-int8.task", off, size), None)
    ids = tokens_of(10)
    np.testing.assert_array_equal(session(inner).eval(ids), session(model).eval(ids))


def test_without_the_library_the_error_says_how_to_get_it():
    """a fresh process: libpocketlm finds no LiteRT library by itself"""
    code = ("from pocketlm.kernels import native as n\n"
            "out, err = n.ffi.new('plm_model **'), n.ffi.new('char **')\n"
            f"st = n.lib.plm_model_open_litert({str(TFLITE)!r}.encode(), 0, 0, out, err)\n"
            "print(st, n.ffi.string(err[0]).decode())\n"
            "st = n.lib.plm_litert_set_library(b'/nonexistent/liblitert-lm.so', err)\n"
            "print(st, n.ffi.string(err[0]).decode())\n")
    env = {k: v for k, v in os.environ.items() if k != "POCKETLM_LITERT_LIB"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert int(first.split()[0]) < 0 and "pip install pocketlm[litert]" in first and "POCKETLM_LITERT_LIB" in first
    assert int(second.split()[0]) < 0 and "/nonexistent/liblitert-lm.so" in second
