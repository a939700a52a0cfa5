"""The C engine (native/src/model/model.c, engine/forward.c, engine/session.c) against the Python
engine: the same logits for F32 weights, the same greedy tokens for every
architecture and weight type, from tensors handed over and from files the C
engine maps itself (ours and llama.cpp's layouts), with F32 and F16 caches."""

import numpy as np
import pytest

from pocketlm.model.forward import KVCache, Model
from pocketlm.model.loader import load_model
from tests.fixtures.llama_cpp import FIXTURES
from tests.model.test_parity import ARCHS

ne = pytest.importorskip("pocketlm.engine.native")
pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
NativeModel, NativeTokens = ne.NativeModel, ne.NativeTokens

PROMPT = [1, 17, 200, 33, 5, 99, 250, 7, 64, 128, 3, 77, 12, 190, 45, 8, 230, 61, 150, 9]
WEIGHT_TYPES = ["F32", "F16", "Q8_0", "Q4_0", "Q4_1"]


def py_greedy(model, prompt, n, kv_type):
    cache = KVCache(model.cfg, len(prompt) + n, kv_type)
    logits, out = model.forward(prompt, cache, last_only=True), []
    for _ in range(n):
        out.append(int(np.argmax(logits[-1])))
        logits = model.forward([out[-1]], cache, last_only=True)
    return out


def c_greedy(native, prompt, n, kv_type):
    from pocketlm.sampling import Sampler

    t = NativeTokens(native, len(prompt) + n, kv_type, Sampler(top_k=1))
    t.add(prompt)
    out = []
    for _ in range(n):
        out.append(t.predict())
        t.add([out[-1]])
    return out


@pytest.fixture(scope="module", params=list(ARCHS))
def folder(request, tmp_path_factory):
    return ARCHS[request.param](tmp_path_factory.mktemp(request.param))


def test_f32_logits_match_the_python_engine(folder):
    model = Model.from_pretrained(folder)
    native = NativeModel.from_model(model, str(folder))
    for kv in ("F32", "F16"):
        want = model.forward(PROMPT, KVCache(model.cfg, 32, kv))
        got = NativeTokens(native, 32, kv).eval(PROMPT, all_logits=True)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
        # one token at a time through the cache gives the same as the batch
        t = NativeTokens(native, 32, kv)
        steps = np.stack([t.eval([tok]) for tok in PROMPT])
        np.testing.assert_allclose(steps, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("wtype", WEIGHT_TYPES)
def test_greedy_tokens_match_for_every_weight_type(folder, wtype):
    model = Model.from_pretrained(folder, wtype)
    native = NativeModel.from_model(model, str(folder))
    for kv in ("F16", "F32"):
        assert c_greedy(native, PROMPT, 24, kv) == py_greedy(model, PROMPT, 24, kv)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.gguf")), ids=lambda p: p.stem)
def test_llama_cpp_files_run_the_same_when_the_c_engine_maps_them(path):
    model, _, _ = load_model(path)
    native = NativeModel.open(path, cfg=model.cfg)
    want = model.forward(PROMPT[:8], KVCache(model.cfg, 16, "F32"))
    got = NativeTokens(native, 16, "F32").eval(PROMPT[:8], all_logits=True)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert c_greedy(native, PROMPT[:8], 8, "F16") == py_greedy(model, PROMPT[:8], 8, "F16")


@pytest.mark.parametrize("arch", ["llama", "gemma", "gpt2", "falcon", "gemma3", "qwen2", "qwen3", "phi3"])
@pytest.mark.parametrize("quantized", [False, True], ids=["f32", "q8_0"])
def test_converted_files_mapped_by_c_match_their_checkpoint(tmp_path, arch, quantized):
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from tests.fixtures import checkpoints
    from tests.genai.test_converter import with_tokenizer

    folder = with_tokenizer(getattr(checkpoints, arch)(tmp_path / "ckpt"))
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"),
                                               is_quantized=quantized))
    model, _, _ = load_model(path)
    native = NativeModel.open(path, cfg=model.cfg)
    assert c_greedy(native, PROMPT, 16, "F16") == py_greedy(model, PROMPT, 16, "F16")
    if not quantized:
        want = Model.from_pretrained(folder).forward(PROMPT, KVCache(model.cfg, 32))
        np.testing.assert_allclose(NativeTokens(native, 32, "F32").eval(PROMPT, all_logits=True), want, atol=1e-4,
                                   rtol=1e-4)


def test_prefill_in_batches_gives_the_same_logits(tmp_path):
    from tests.fixtures import checkpoints

    model = Model.from_pretrained(checkpoints.llama(tmp_path / "m"))
    native = NativeModel.from_model(model, "m")
    ffi, lib = ne._lib()
    want = model.forward(PROMPT, KVCache(model.cfg, 32, "F32"))
    for batch in (1, 3, 7, 64):
        t = NativeTokens.__new__(NativeTokens)
        t.model = native
        p = native.session_params(32, "F32")
        p.n_batch = batch
        t.handle = ffi.gc(ne.new_c_session(native, p), lib.plm_session_free)
        np.testing.assert_allclose(t.eval(PROMPT, all_logits=True), want, atol=1e-4, rtol=1e-4)


def test_sampled_tokens_match_the_python_sampler(tmp_path):
    from pocketlm.sampling import Sampler
    from tests.fixtures import checkpoints

    model = Model.from_pretrained(checkpoints.llama(tmp_path / "m"), "Q8_0")
    native = NativeModel.from_model(model, "m")
    for seed in (0, 1, 12345):
        smp = Sampler(top_k=40, top_p=0.9, temperature=0.8, seed=seed)
        cache = KVCache(model.cfg, 64, "F16")
        logits, want = model.forward(PROMPT, cache, last_only=True), []
        for _ in range(30):
            want.append(smp.sample(logits[-1]))
            logits = model.forward([want[-1]], cache, last_only=True)
        t = NativeTokens(native, 64, "F16", Sampler(top_k=40, top_p=0.9, temperature=0.8, seed=seed))
        t.add(PROMPT)
        got = []
        for _ in range(30):
            got.append(t.predict())
            t.add([got[-1]])
        assert got == want


def test_clone_carries_the_cache_and_the_random_stream(tmp_path):
    from pocketlm.sampling import Sampler
    from tests.fixtures import checkpoints

    native = NativeModel.from_model(Model.from_pretrained(checkpoints.llama(tmp_path / "m")), "m")
    a = NativeTokens(native, 64, "F16", Sampler(top_k=40, temperature=1.0, seed=3))
    a.add(PROMPT)
    a.predict()  # runs the prompt, advances the stream
    b = a.clone()
    assert b.size == a.size == len(PROMPT) and b.memory == a.memory
    seq_a, seq_b = [], []
    for seq, t in ((seq_a, a), (seq_b, b)):
        for _ in range(10):
            seq.append(t.predict())
            t.add([seq[-1]])
    assert seq_a == seq_b


def test_a_full_context_and_bad_tokens_are_refused(tmp_path):
    from tests.fixtures import checkpoints

    native = NativeModel.from_model(Model.from_pretrained(checkpoints.llama(tmp_path / "m")), "m")
    t = NativeTokens(native, 8, "F16")
    with pytest.raises(ValueError, match="do not fit the session's 8"):
        t.add(list(range(9)))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        t.add([native.cfg.vocab_size])
    t.add(list(range(8)))
    assert t.size == 8
    with pytest.raises(ValueError, match="do not fit"):
        t.add([1])
    # sizes that would overflow the session's buffers are refused, and sized as nothing
    with pytest.raises(ValueError, match="more than a session can hold"):
        NativeTokens(native, 2**40, "F16")
    assert native.session_bytes(2**40, "F16") == 0 < native.session_bytes(8, "F16")


def test_weights_stay_mapped(tmp_path):
    """A file's matrices are read where they lie: the model allocates only
    small things (norm vectors it converts, layer tables), not weights."""
    path = FIXTURES / "llama.gguf"
    native = NativeModel.open(path)
    assert native.weight_bytes > 0
    assert native.owned_bytes < 0.05 * native.weight_bytes + 4096


@pytest.mark.parametrize("quantized", [False, True], ids=["f16", "q8_0"])
def test_files_with_byte_alignment_are_copied_where_misaligned(tmp_path, monkeypatch, quantized):
    """general.alignment may be any power of two; with 1, F32 values and F16
    block scales land at odd addresses. The C engine copies those matrices to
    aligned memory (found by fuzzing: typed loads at odd addresses) and gives
    the same tokens as the Python reader."""
    import gguf

    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from tests.fixtures import checkpoints
    from tests.genai.test_converter import with_tokenizer

    add_name, pad = gguf.GGUFWriter.add_name, [""]

    def byte_aligned(self, name):
        add_name(self, name)
        self.add_custom_alignment(1)
        self.add_string("pocketlm.pad", pad[0])  # moves the data section by a byte per character

    monkeypatch.setattr(gguf.GGUFWriter, "add_name", byte_aligned)
    folder = with_tokenizer(checkpoints.llama(tmp_path / "ckpt"))
    for pad[0] in ("", "x"):
        path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o"),
                                                   is_quantized=quantized))
        if any(t.data_offset % 2 for t in gguf.GGUFReader(path).tensors):
            break
    else:
        pytest.fail("no tensor at an odd offset")
    model, _, _ = load_model(path)
    native = NativeModel.open(path, cfg=model.cfg)
    assert native.owned_bytes > 0.3 * native.weight_bytes  # the misaligned ones were copied
    assert c_greedy(native, PROMPT, 12, "F16") == py_greedy(model, PROMPT, 12, "F16")
