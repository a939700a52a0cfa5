"""The C engine on Gemma 3, Qwen2, Qwen3 and Phi-3 files llama.cpp's own
converter wrote (tests/fixtures/llama_cpp), against transformers on the
checkpoint each came from (its matrices rounded to F16, as the file holds
them; llama.cpp keeps vectors F32): the same logits in F32, the same greedy
tokens, decoding one token at a time equal to one prefill. Gemma 3's local
layers and Phi-3's window (a pocketlm file: llama.cpp's phi3 runs without
one) keep a ring of window + n_batch - 1 positions in C: prompts longer
than the window and than the ring (small n_batch, so several batches wrap
it), a clone taken mid-wrap, and the session's memory counting the ring.
Phi-3's longrope picks its factors once per call, by where the call's
whole input ends."""

import numpy as np
import pytest

from tests.fixtures.llama_cpp import fixture_path, source_checkpoint

ne = pytest.importorskip("pocketlm.engine.native")
pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
NativeModel, NativeTokens = ne.NativeModel, ne.NativeTokens

ARCHS = ["gemma3", "qwen2", "qwen3", "phi3"]
# 26 tokens: past Gemma 3's window (8), Phi-3's (12) and its longrope threshold (16)
PROMPT = [1, 17, 200, 33, 5, 99, 250, 7, 64, 128, 3, 77, 12, 190, 45, 8, 230, 61, 150, 9, 41, 300, 2, 11, 19, 80]
TIGHT = 1e-5  # of the logits' range: the engines agree to ~2e-7 in F32


@pytest.fixture(scope="module", params=ARCHS + ["phi3-window"])
def pair(request, tmp_path_factory):
    """(name, the C engine's model over the file, transformers' model of its source checkpoint)."""
    name = request.param
    return name, native_model(name, tmp_path_factory), hf_model(name, tmp_path_factory)


_HF, _FILES = {}, {}


def native_model(name, tmp_path_factory):
    """llama.cpp's file of the fixture, or for "phi3-window" pocketlm's F32 file of Phi-3 with its window of 12."""
    if name != "phi3-window":
        return NativeModel.open(fixture_path(name))
    if name not in _FILES:
        from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
        from tests.fixtures import checkpoints
        from tests.fixtures.tokenizers import train_sentencepiece

        tmp = tmp_path_factory.mktemp(name)
        folder = checkpoints.phi3(tmp / "ckpt", vocab_size=700)
        train_sentencepiece(folder, vocab_size=700)
        _FILES[name] = (convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp / "o"),
                                                            is_quantized=False)), folder)
    return NativeModel.open(_FILES[name][0])


def hf_model(name, tmp_path_factory):
    if name not in _HF:
        if name == "phi3-window":
            native_model(name, tmp_path_factory)
            folder = _FILES[name][1]
        else:
            folder = source_checkpoint(name, tmp_path_factory.mktemp(name) / name)
        m = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        m.eval()
        with torch.no_grad():  # what convert_hf_to_gguf --outtype f16 stores: matrices F16, vectors F32
            for p in m.parameters():
                if p.dim() >= 2 and name != "phi3-window":
                    p.copy_(p.half().float())
        _HF[name] = m
    return _HF[name]


def hf_logits(m, ids):
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].numpy()


def hf_decode(m, prompt, n):
    """transformers' greedy loop over its own cache: the prompt in one call, then one token a call (so
    longrope's factors are chosen per call as generate does); the tokens and each call's last logits."""
    with torch.no_grad():
        out = m(torch.tensor([prompt]), use_cache=True)
        cache, logits, tokens = out.past_key_values, [out.logits[0, -1].numpy()], []
        for i in range(n):
            tokens.append(int(np.argmax(logits[-1])))
            pos = len(prompt) + i
            out = m(torch.tensor([[tokens[-1]]]), past_key_values=cache, use_cache=True,
                    position_ids=torch.tensor([[pos]]), cache_position=torch.tensor([pos]))
            cache = out.past_key_values
            logits.append(out.logits[0, -1].numpy())
    return tokens, np.stack(logits)


def session(native, max_tokens, kv="F32", n_batch=0):
    ffi, lib = ne._lib()
    t = NativeTokens.__new__(NativeTokens)
    t.model = native
    p = native.session_params(max_tokens, kv)
    p.n_batch = n_batch
    t.handle = ffi.gc(ne.new_c_session(native, p), lib.plm_session_free)
    t.params = p
    return t


def close(got, want, tol=TIGHT):
    span = float(want.max() - want.min())
    err = float(np.abs(got - want).max())
    assert err <= tol * span, f"max error {err:.3g} is {err / span:.3g} of the logits' range"


def kv_bytes(native, t):
    return ne._lib()[1].plm_session_kv_bytes(native.handle, t.params)


def test_llama_cpp_file_gives_transformers_logits(pair):
    name, native, hf = pair
    ffi, lib = ne._lib()
    assert ffi.string(lib.plm_model_get_config(native.handle).arch).decode() == name.split("-")[0]
    close(session(native, 64).eval(PROMPT, all_logits=True), hf_logits(hf, PROMPT))


def test_greedy_decoding_gives_transformers_tokens_and_logits(pair):
    """32 greedy tokens after a 10-token prompt: the decode steps cross Gemma 3's and Phi-3's windows
    and Phi-3's original length (16); n_batch 1 makes the rings exactly the windows."""
    name, native, hf = pair
    prompt = PROMPT[:10]
    want_tokens, want_logits = hf_decode(hf, prompt, 32)
    for n_batch in (0, 1):
        t = session(native, 64, n_batch=n_batch)
        logits, tokens = [t.eval(prompt)], []
        for _ in range(32):
            tokens.append(int(np.argmax(logits[-1])))
            logits.append(t.eval([tokens[-1]]))
        assert tokens == want_tokens, (name, n_batch)
        close(np.stack(logits), want_logits)
        # the sampler's greedy path through plm_session_predict gives them too
        from pocketlm.sampling import Sampler

        g = NativeTokens(native, 64, "F32", Sampler(top_k=1))
        g.add(prompt)
        got = []
        for _ in range(32):
            got.append(g.predict())
            g.add([got[-1]])
        assert got == want_tokens


def test_token_by_token_equals_one_prefill(pair):
    """Phi-3's prompt stays within its original length here: past it a prefill rotates every position by
    the long factors, token-by-token decoding only the later ones (as in transformers)."""
    name, native, _ = pair
    prompt = PROMPT[:16] if name.startswith("phi3") else PROMPT
    for kv, tol in (("F32", TIGHT), ("F16", 1e-3)):
        whole = session(native, 64, kv).eval(prompt, all_logits=True)
        t = session(native, 64, kv)
        steps = np.stack([t.eval([tok]) for tok in prompt])
        close(steps, whole, tol)


@pytest.mark.parametrize("name", ["gemma3", "phi3-window"])
@pytest.mark.parametrize("n_batch", [1, 3, 4, 7, 64])
def test_prompt_longer_than_the_window_and_the_ring(tmp_path_factory, name, n_batch):
    """The 26-token prompt in batches of n_batch: the local layers' rings (window + n_batch - 1 rows)
    wrap several times, and every position still sees exactly its window."""
    native, hf = native_model(name, tmp_path_factory), hf_model(name, tmp_path_factory)
    c = ne._lib()[1].plm_model_get_config(native.handle)
    window = c.sliding_window
    assert 0 < window < len(PROMPT)
    t = session(native, 64, n_batch=n_batch)
    close(t.eval(PROMPT, all_logits=True), hf_logits(hf, PROMPT))
    ring = min(64, window + n_batch - 1)
    rows = sum(ring if c.sliding_window_layer[i] else 64 for i in range(c.n_layers))
    assert kv_bytes(native, t) == 2 * rows * c.n_kv_heads * c.head_dim * 4


def test_longrope_factors_are_chosen_by_the_whole_input(tmp_path_factory):
    """A prompt ending at the original length (16) rotates by the short factors, one ending past it by the
    long ones at every position, however it is batched: transformers' per-call choice."""
    native, hf = native_model("phi3", tmp_path_factory), hf_model("phi3", tmp_path_factory)
    for n in (16, 17, 26):
        want = hf_logits(hf, PROMPT[:n])
        for n_batch in (0, 4, 5):
            close(session(native, 64, n_batch=n_batch).eval(PROMPT[:n], all_logits=True), want)
    # the choice matters: position 0's logits differ between the short and the long factors
    short = session(native, 64).eval(PROMPT[:16], all_logits=True)
    long_ = session(native, 64).eval(PROMPT[:17], all_logits=True)
    assert np.abs(short[1:16] - long_[1:16]).max() > 1e-3 * float(short.max() - short.min())


def test_clone_in_the_middle_of_a_ring_wrap(tmp_path_factory):
    """n_batch 4: the local layers' rings hold 11 rows; after 13 tokens they have wrapped. A clone
    taken there carries the rings as they are: both go on to transformers' logits, apart."""
    native, hf = native_model("gemma3", tmp_path_factory), hf_model("gemma3", tmp_path_factory)
    want = hf_logits(hf, PROMPT)
    a = session(native, 64, n_batch=4)
    a.eval(PROMPT[:13])
    b = a.clone()
    assert b.size == a.size == 13 and b.memory == a.memory
    close(b.eval(PROMPT[13:], all_logits=True), want[13:])
    other = PROMPT[13:][::-1]  # the source goes elsewhere, the clone's rings are its own
    close(a.eval(other, all_logits=True), hf_logits(hf, PROMPT[:13] + other)[13:])
    c = b.clone()
    close(c.eval([5, 6], all_logits=True), hf_logits(hf, PROMPT + [5, 6])[len(PROMPT):])


def test_session_memory_counts_the_ring():
    """Gemma 3 at maxTokens 4096: the five local layers keep window + n_batch - 1 rows, the full one 4096;
    the session allocates less than a full cache of every layer alone would take."""
    native = NativeModel.open(fixture_path("gemma3"))
    c = ne._lib()[1].plm_model_get_config(native.handle)
    per_row = 2 * c.n_kv_heads * c.head_dim * 2  # keys and values, F16
    t = session(native, 4096, "F16")  # the default n_batch, 256
    ring = c.sliding_window + 256 - 1
    assert kv_bytes(native, t) == (4096 + 5 * ring) * per_row
    assert t.memory == native.session_bytes(4096, "F16") < c.n_layers * 4096 * per_row
    # with a smaller n_batch the ring shrinks with it
    assert kv_bytes(native, session(native, 4096, "F16", n_batch=8)) == (4096 + 5 * (c.sliding_window + 7)) * per_row
    # a layer without a window keeps max_tokens rows
    q = NativeModel.open(fixture_path("qwen3"))
    cq = ne._lib()[1].plm_model_get_config(q.handle)
    assert kv_bytes(q, session(q, 4096, "F16")) == cq.n_layers * 4096 * 2 * cq.n_kv_heads * cq.head_dim * 2


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_tensors_handed_over_match_the_python_engine(tmp_path, arch):
    """plm_model_create over a checkpoint's canonical tensors (Phi-3's gate/up and qkv split by the Python
    loader, Gemma 3's query_pre_attn_scalar and local base as the config has them, Phi-3's window): the
    Python engine's and transformers' logits for a prompt past every window, in batches that wrap the rings."""
    from pocketlm.model.forward import KVCache, Model
    from tests.fixtures import checkpoints

    model = Model.from_pretrained(getattr(checkpoints, arch)(tmp_path / arch))
    native = NativeModel.from_model(model, arch)
    prompt = [t % model.cfg.vocab_size for t in PROMPT]
    want = model.forward(prompt, KVCache(model.cfg, 64, "F32"))
    for n_batch in (0, 4):
        close(session(native, 64, n_batch=n_batch).eval(prompt, all_logits=True), want)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / arch, dtype=torch.float32).eval()
    close(session(native, 64).eval(prompt, all_logits=True), hf_logits(hf, prompt))
