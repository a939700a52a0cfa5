"""The files LiteRT runs under a simulated phone: its threads cap LiteRT's
(XNNPack's thread pool, counted from the process's threads), memory is
counted as the process holds it (checked against its RSS, in a fresh
process, on the fixtures and on a Llama exported here large enough for the
weights to dominate), the KV cache is the graph's whole cache whatever
maxTokens is, nothing is written beside the file, and the speed estimate
says it is not modelled rather than printing a figure."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions, device
from pocketlm.device import DeviceMemoryError, SpeedNotModelledError, estimate, load_profile, memory_needed
from pocketlm.model.litert_memory import LITERT_RUNTIME_BYTES, graph_memory
from tests.fixtures import litert as fx
from tests.fixtures.litert import FOLDER

pytest.importorskip("litert_lm", reason="the LiteRT runtime (pip install pocketlm[litert])")
ROOT = Path(__file__).resolve().parents[2]
TINY = FOLDER / "llama-tiny-int8.litertlm"
TOLERANCE = 0.25  # counted memory against the RSS the process grew by


def options(path, max_tokens=fx.CACHE_LENGTH):
    return LlmInferenceOptions.builder().setModelPath(str(path)).setMaxTokens(max_tokens).setTopK(1).build()


def new_session(llm):
    return LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())


# -- threads -----------------------------------------------------------------------------


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts the process's threads in /proc")
def test_the_profiles_threads_cap_xnnpacks_pool():
    """A LiteRT session's interpreter runs XNNPack on plm_effective_threads(0) threads: the native engine's
    count (3 here), capped by the device's. XNNPack's pool starts that many less one (the caller runs too)
    when the session is created and keeps them while it lives."""
    from pocketlm import kernels

    backend = kernels.get_backend("native")
    default = backend.set_num_threads(3)
    cap = backend.set_max_threads(0)
    try:
        for profile_threads, want in ((None, 3), (1, 1), (2, 2), (4, 3)):
            ctx = None if profile_threads is None else \
                device.context(dataclasses.replace(load_profile("pixel_8"), threads=profile_threads))
            with LlmInference.createFromOptions(ctx, options(TINY, 64)) as llm:
                before = _threads()
                s = new_session(llm)
                started = _threads() - before
                s.addQueryChunk("Hello world")
                s.generateResponse()
                after_run = _threads() - before
                s.close()
            assert started == after_run == want - 1, (profile_threads, started, after_run)
        assert backend.set_max_threads(cap) == 0  # each context's cap went with its LlmInference
    finally:
        backend.set_num_threads(default)
        backend.set_max_threads(cap)


# -- memory: what is counted -------------------------------------------------------------


def test_the_kv_cache_is_the_graphs_whole_cache_whatever_max_tokens():
    ctx = device.context("pixel_8")
    mem = None
    for max_tokens in (16, 64, fx.CACHE_LENGTH):
        with LlmInference.createFromOptions(ctx, options(TINY, max_tokens)) as llm:
            graph = llm.engine.model
            mem = graph_memory(graph)
            # the mapped graph (and the executor's small structures), LiteRT's runtime
            assert ctx.memory.parts["runtime"] == LITERT_RUNTIME_BYTES
            assert graph.size <= ctx.memory.parts["weights"] < graph.size + 2**20
            s = new_session(llm)
            # K and V of 2 layers x 2 KV heads x 16 x 256 positions, F32, in and out of prefill_8, prefill_32, decode
            assert ctx.memory.parts["KV cache"] == mem.kv_tensor_bytes == 2 * 3 * 2 * 2 * 2 * 16 * 256 * 4
            assert ctx.memory.parts["packed weights"] == mem.packed_weight_bytes > graph.tflite.weight_bytes
            assert ctx.memory.parts["activations"] > s._session.memory_bytes - mem.kv_tensor_bytes
            clone = s.cloneSession()  # its own interpreter: packs the weights again
            assert ctx.memory.parts["packed weights"] == 2 * mem.packed_weight_bytes
            clone.close()
            s.close()
            need = memory_needed(graph, max_tokens, "F32", llm.engine.native)
            assert need.kv_cache == mem.kv_tensor_bytes and need.packed_weights == mem.packed_weight_bytes
        assert ctx.memory.in_use == 0
    # the same figures from the graph alone, without the opened model
    alone = memory_needed(graph, fx.CACHE_LENGTH)
    assert (alone.kv_cache, alone.packed_weights, alone.runtime) == (need.kv_cache, need.packed_weights, need.runtime)
    assert abs(alone.weights - need.weights) < 2**20 and abs(alone.activations - need.activations) < 2**20


def test_the_packed_weights_are_every_signatures_filters():
    """XNNPack packs each FULLY_CONNECTED filter once for every subgraph using it (no weights cache): int8 plus
    12 bytes a channel, float32 plus 4. llama-tiny's graphs: 4 (q, k, v, o) + 3 (MLP) matrices a layer, 2 layers,
    the classifier only in decode, and each prefill's last layer keeping just its K and V projections."""
    h, kv, inter, vocab = 64, 32, 128, 500
    layer = dict(q=(h, h), k=(kv, h), v=(kv, h), o=(h, h), gate=(inter, h), up=(inter, h), down=(h, inter))
    full = list(layer.values())
    prefill = full + [layer["k"], layer["v"]]  # layer 0 whole, layer 1's K and V
    decode = full + full + [(vocab, h)]
    for name, per_weight, per_channel in (("llama-tiny-int8.litertlm", 1, 12), ("llama-tiny-f32.litertlm", 4, 4)):
        graph = LlmInference.createFromOptions(None, options(FOLDER / name)).engine.model
        want = sum(n * k * per_weight + n * per_channel for n, k in 2 * prefill + decode)
        assert graph_memory(graph).packed_weight_bytes == want, name


def test_a_file_past_the_budget_is_refused_naming_the_cache_it_would_need():
    engine = LlmInference.createFromOptions(None, options(TINY, 64)).engine
    need = memory_needed(engine.model, 64, "F32", engine.native)
    tight = dataclasses.replace(load_profile("pixel_8"), app_memory_budget=need.total - need.kv_cache // 2)
    with pytest.raises(DeviceMemoryError) as e:
        LlmInference.createFromOptions(device.context(tight), options(TINY, 64))
    msg = str(e.value)
    assert "XNNPack packed weights" in msg and "KV cache" in msg
    assert "exported with a KV cache of <= 128 positions" in msg and "this file's is 256" in msg  # half of it fits


# -- memory: counted against the process's RSS -----------------------------------------------

MEASURE = textwrap.dedent("""
    import dataclasses, json, sys

    def status():
        return {l.split(":")[0]: int(l.split()[1]) * 1024 for l in open("/proc/self/status")
                if l.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile"))}

    # Python's modules and first-use costs are not the runtime's memory: imported, and a parse done, first
    import jinja2, sentencepiece, tflite  # noqa: F401
    from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions, device
    from pocketlm import kernels
    from pocketlm.engine import litert, native  # noqa: F401
    from pocketlm.model.loader import load_model
    for name in ("native", "numba"):  # the device context caps both: numba's import is Python's
        try:
            kernels.get_backend(name)
        except ImportError:
            pass
    path, other = sys.argv[1], sys.argv[2]
    load_model(other)
    cache = load_model(path)[0].cache_length
    ctx = device.context(dataclasses.replace(device.load_profile("galaxy_s24_ultra"), app_memory_budget=2**40))
    opts = LlmInferenceOptions.builder().setModelPath(path).setMaxTokens(cache).setTopK(1).build()
    session_opts = LlmInferenceSessionOptions.builder().setTopK(1).build()

    before = status()
    llm = LlmInference.createFromOptions(ctx, opts)
    first = LlmInferenceSession.createFromOptions(llm, session_opts)
    first.addQueryChunk("Hello world")
    first.generateResponse()
    after_first = status()
    counted_first = ctx.memory.in_use
    second = LlmInferenceSession.createFromOptions(llm, session_opts)
    second.addQueryChunk("Hello world")
    second.generateResponse()
    after_second = status()
    print(json.dumps(dict(before=before, first=after_first, second=after_second, counted_first=counted_first,
                          counted_second=ctx.memory.in_use - counted_first, parts=ctx.memory.parts)))
""")


def measure(path: Path) -> dict:
    """RSS growth and counted memory around Engine creation + a first generation, then a second session, in a
    fresh process (the test process's own allocations are noise at these sizes)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"), str(ROOT),
                                                                    os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(FOLDER / "llama-bpe-int8.litertlm")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    d = json.loads(out.stdout.strip().splitlines()[-1])
    d["grew_first"] = d["first"]["VmHWM"] - d["before"]["VmRSS"]
    d["grew_second"] = d["second"]["VmRSS"] - d["first"]["VmRSS"]
    return d


def _within(counted: int, grew: int, what: str) -> None:
    assert abs(counted - grew) <= TOLERANCE * grew, \
        f"{what}: counted {counted / 1e6:.1f} MB, the process grew by {grew / 1e6:.1f} MB ({counted / grew:.2f}x)"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the process's RSS from /proc")
@pytest.mark.parametrize("name", ["llama-tiny-int8.litertlm", "llama-tiny-f32.litertlm", "llama-tiny-int8.task"])
def test_counted_memory_is_what_the_process_holds_for_the_fixtures(name):
    # LiteRT's runtime is most of it at this size; a second session (its interpreter, caches, packed weights)
    # is all the file's
    d = measure(FOLDER / name)
    _within(d["counted_first"], d["grew_first"], f"{name}: engine + first session")
    _within(d["counted_second"], d["grew_second"], f"{name}: a second session")


def larger_checkpoint(folder: Path) -> Path:
    """A Llama of hidden 512 x 8 layers x vocab 4096 (tests/fixtures/litert.py's tiny one, larger), its
    classifier rows past the 500-piece tokenizer zeroed so generated tokens decode."""
    import sentencepiece as spm

    from tests.fixtures.tokenizers import train_sentencepiece

    train_sentencepiece(folder, vocab_size=500)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    vocab = 4096
    silent = [i for i in range(sp.get_piece_size()) if (sp.is_byte(i) or sp.is_control(i) or sp.is_unknown(i))
              and i != sp.eos_id()] + list(range(sp.get_piece_size(), vocab))
    c = fx._llama_config(vocab, hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                         num_key_value_heads=4)
    fx._write(folder, c, seed=7, silent=silent)
    (folder / "tokenizer_config.json").write_text(json.dumps(dict(
        tokenizer_class="LlamaTokenizer", add_bos_token=True, add_eos_token=False, bos_token="<s>",
        eos_token="</s>", unk_token="<unk>", legacy=False)))
    return folder


@pytest.fixture(scope="module")
def larger_litertlm(tmp_path_factory):
    """The larger Llama through litert-torch's exporter, int8 as the fixtures (about 50 s)."""
    from pocketlm.genai.litert_export import export_litertlm, exporter_version

    if exporter_version() is None:
        pytest.skip("litert-torch's exporter is not installed")
    tmp = tmp_path_factory.mktemp("larger-litert")
    return export_litertlm(larger_checkpoint(tmp / "checkpoint"), tmp / "out", quantize="dynamic_wi8_afp32",
                           prefill_lengths=fx.PREFILL_LENGTHS, cache_length=fx.CACHE_LENGTH, progress=False)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the process's RSS from /proc")
def test_counted_memory_is_what_the_process_holds_for_a_larger_model(larger_litertlm):
    d = measure(larger_litertlm)
    parts = d["parts"]  # with two sessions open
    # XNNPack's packed weights (each signature's copy of 29 MB of int8) are most of a session, the file's
    # weights more than LiteRT's runtime: no constant hides a wrong figure
    assert parts["packed weights"] / 2 > 2 * parts["weights"] > 2 * parts["KV cache"] / 2
    assert parts["weights"] / 2 > 0.25 * LITERT_RUNTIME_BYTES
    _within(d["counted_first"], d["grew_first"], "engine + first session")
    _within(d["counted_second"], d["grew_second"], "a second session")


# -- nothing beside the file; no speed figure --------------------------------------------


def _folder_state(folder: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in folder.iterdir()}


def test_running_under_a_device_writes_nothing_beside_the_file(tmp_path):
    for name in ("llama-tiny-int8.litertlm", "llama-tiny-int8.task", "llama-tiny-int8.tflite",
                 "llama-tiny.tokenizer.model"):
        shutil.copy2(FOLDER / name, tmp_path / name)
    before = _folder_state(tmp_path)
    for name in ("llama-tiny-int8.litertlm", "llama-tiny-int8.task", "llama-tiny-int8.tflite"):
        for ctx in (None, device.context("pixel_8")):
            with LlmInference.createFromOptions(ctx, options(tmp_path / name, 64)) as llm:
                assert llm.generateResponse("Hello world") is not None
                s = new_session(llm)
                s.addQueryChunk("Hello")
                s.cloneSession().generateResponse()
                s.close()
    assert _folder_state(tmp_path) == before  # no .xnnpack_cache or any other file, and the files unchanged


def test_the_speed_estimate_says_it_is_not_modelled():
    ctx = device.context("galaxy_s23")
    with LlmInference.createFromOptions(ctx, options(TINY, 64)) as llm:
        llm.generateResponse("Hello world")
        stats = llm.last_stats
    assert stats.decode_tokens > 0 and stats.decode_traffic.weight_bytes == 0  # LiteRT's kernels count nothing
    with pytest.raises(SpeedNotModelledError, match="not modelled"):
        estimate(ctx.profile, stats)
    report = ctx.report()
    assert "estimated on the phone: not modelled" in report and "tok/s" not in report


def test_a_task_bundle_is_counted_as_its_litertlm():
    needs = []
    for name in ("llama-tiny-int8.litertlm", "llama-tiny-int8.task", "llama-tiny-int8.tflite"):
        engine = LlmInference.createFromOptions(None, options(FOLDER / name)).engine
        needs.append(memory_needed(engine.model, 256, "F32", engine.native))
    assert len({(n.kv_cache, n.packed_weights, n.activations, n.runtime) for n in needs}) == 1
    # the same graph, wherever it lies in its file: the .task's entry starts unaligned, so the executor holds an
    # aligned copy in place of the map
    assert len({n.weights for n in needs}) == 1
