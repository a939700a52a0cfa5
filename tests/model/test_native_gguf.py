"""libpocketlm's GGUF reader (native/src/model/gguf.c) against pocketlm's Python
reader: the same metadata and tensor table for every fixture (llama.cpp's
files, ours, one inside a .task), and the same verdict on corrupted files."""

import random
import zipfile

import numpy as np
import pytest

from pocketlm.model.gguf_reader import GGUFError, GGUFFile
from tests.fixtures.llama_cpp import FIXTURES
from tests.fixtures.mediapipe import BUNDLE

native = pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)


def python_view(path, offset=0, length=None):
    f = GGUFFile(path, offset, length)
    fields = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.fields.items()}
    base = min((t.offset for t in f.tensors), default=0)
    tensors = [(t.name, t.tensor_type, tuple(int(d) for d in t.shape), t.offset - base, t.data.nbytes)
               for t in f.tensors]
    return fields, tensors


def assert_same(c, py):
    (cf, ct), (pf, pt) = c, py
    assert list(cf) == list(pf)
    for key in pf:
        if isinstance(pf[key], float) or (isinstance(pf[key], list) and pf[key] and isinstance(pf[key][0], float)):
            np.testing.assert_allclose(cf[key], pf[key], rtol=1e-7, err_msg=key)
        else:
            assert cf[key] == pf[key], key
    assert ct == pt


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.gguf")), ids=lambda p: p.name)
def test_llama_cpp_files_read_the_same(path):
    assert_same(native.gguf_read(path), python_view(path))


def test_model_inside_a_task_reads_in_place():
    with zipfile.ZipFile(BUNDLE) as zf:
        info = zf.getinfo("TF_LITE_PREFILL_DECODE")
    from pocketlm.model.loader import _stored_data_offset

    off = _stored_data_offset(BUNDLE, info)
    assert_same(native.gguf_read(BUNDLE, off, info.file_size), python_view(BUNDLE, off, info.file_size))


def test_corrupted_files_get_the_same_verdict(tmp_path):
    src = FIXTURES / "gpt2.gguf"
    original = src.read_bytes()
    head = GGUFFile(src).data_start + 64
    rng = random.Random(7)
    path = tmp_path / "m.gguf"
    refused = 0
    for i in range(600):
        data = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(head)] = rng.randrange(256)
        if i % 10 == 0:
            data = data[: rng.randrange(len(data))]  # truncated too
        path.write_bytes(bytes(data))
        try:
            py = python_view(path)
        except (GGUFError, ValueError) as e:
            py = e
        try:
            c = native.gguf_read(path)
        except GGUFError as e:
            assert str(path) in str(e)
            c = e
        assert isinstance(c, Exception) == isinstance(py, Exception), (i, c, py)
        if isinstance(c, Exception):
            refused += 1
        else:
            assert_same(c, py)
    assert refused > 100


def test_refusals_name_the_problem(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"GGML" + bytes(100))
    with pytest.raises(GGUFError, match="not a GGUF file"):
        native.gguf_read(p)
    p.write_bytes(b"GGUF" + (7).to_bytes(4, "little") + bytes(16))
    with pytest.raises(GGUFError, match="version 7"):
        native.gguf_read(p)
    p.write_bytes(b"")
    with pytest.raises(GGUFError, match="empty file"):
        native.gguf_read(p)
    with pytest.raises(GGUFError, match="cannot open"):
        native.gguf_read(tmp_path / "missing.gguf")


def _same_config(c: dict, py) -> None:
    import dataclasses

    want = dataclasses.asdict(py)
    assert set(c) == set(want)
    for key, value in want.items():
        if isinstance(value, float):
            assert c[key] == pytest.approx(value, rel=1e-6), key
        elif key in ("rope_freq_factors", "rope_freq_factors_long"):
            np.testing.assert_allclose(c[key], value, rtol=1e-6)
        else:
            assert c[key] == (tuple(value) if isinstance(value, list) else value), key


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.gguf")), ids=lambda p: p.name)
def test_model_config_of_llama_cpp_files(path):
    from pocketlm.model.gguf_file import read_gguf

    _same_config(native.gguf_model_config(path), read_gguf(path)[0])


@pytest.mark.parametrize("arch", ["llama", "llama3", "mistral", "gemma", "gemma2", "phi", "stablelm", "gpt2",
                                  "falcon", "gemma3", "qwen2", "qwen3", "phi3"])
def test_model_config_of_pocketlm_files(tmp_path, arch):
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from pocketlm.model.gguf_file import read_gguf
    from tests.fixtures import checkpoints
    from tests.fixtures.llama_cpp import without_pocketlm_keys
    from tests.fixtures.tokenizers import train_byte_level_bpe

    build = {"llama3": lambda f: checkpoints.llama(f, rope_theta=500000.0, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}), "mistral": lambda f: checkpoints.llama(
        f, model_type="mistral", sliding_window=6)}.get(arch) or getattr(checkpoints, arch)
    folder = build(tmp_path / "ckpt")
    train_byte_level_bpe(folder, vocab_size=256)
    path = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o")))
    _same_config(native.gguf_model_config(path), read_gguf(path)[0])
    if arch in ("llama3", "gemma2", "phi", "gemma3", "qwen3", "phi3"):  # the same file with llama.cpp's keys only
        plain = without_pocketlm_keys(path, tmp_path / "plain.gguf")
        _same_config(native.gguf_model_config(plain), read_gguf(plain)[0])


def test_model_config_refusals_name_the_file_and_key(tmp_path):
    from tests.fixtures.llama_cpp import without_pocketlm_keys

    bad = without_pocketlm_keys(FIXTURES / "llama.gguf", tmp_path / "yarn.gguf", **{"llama.rope.scaling.type": "yarn"})
    with pytest.raises(GGUFError, match=r"yarn.gguf: llama.rope.scaling.type 'yarn' is not supported"):
        native.gguf_model_config(bad)
    bad = without_pocketlm_keys(FIXTURES / "llama.gguf", tmp_path / "arch.gguf", **{"general.architecture": "mamba"})
    with pytest.raises(GGUFError, match="arch.gguf: GGUF architecture 'mamba' is not supported"):
        native.gguf_model_config(bad)


def test_model_config_of_corrupted_files_is_read_or_refused(tmp_path):
    """Mutants of a pocketlm file's header (the pocketlm.config JSON among it):
    the C reader gives a config or a GGUFError naming the file, never a crash;
    when both readers accept, they agree on the sizes."""
    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
    from pocketlm.model.gguf_file import read_gguf
    from tests.fixtures import checkpoints
    from tests.fixtures.tokenizers import train_byte_level_bpe

    folder = checkpoints.gemma2(tmp_path / "ckpt")
    train_byte_level_bpe(folder, vocab_size=256)
    src = convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(tmp_path / "o")))
    original = src.read_bytes()
    start = original.index(b'{"arch"')
    end = original.index(b"}", start) + 1
    rng = random.Random(3)
    path = tmp_path / "m.gguf"
    outcomes = {"read": 0, "refused": 0}
    for _ in range(500):
        data = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(start, end)] = rng.choice(b'{}[]",:.-0123456789eEtruefalsn \\x\xff')
        path.write_bytes(bytes(data))
        try:
            c = native.gguf_model_config(path)
        except GGUFError as e:
            assert str(path) in str(e)
            outcomes["refused"] += 1
            continue
        outcomes["read"] += 1
        try:
            py = read_gguf(path)[0]
        except ValueError:
            continue
        assert (c["n_layers"], c["hidden_size"], c["vocab_size"]) == (py.n_layers, py.hidden_size, py.vocab_size)
    assert outcomes["refused"] > 100 and outcomes["read"] > 3, outcomes
