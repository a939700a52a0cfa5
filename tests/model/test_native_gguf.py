"""libpocketlm's GGUF reader (native/src/gguf.c) against pocketlm's Python
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
