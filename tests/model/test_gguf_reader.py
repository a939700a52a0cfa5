"""pocketlm's own GGUF reader: the same metadata and tensor bytes as the
gguf package's reader on real files (llama.cpp's and ours), a GGUF read in
place inside a .task bundle, and every kind of damaged file refused with a
ValueError that names the file."""

import zipfile

import gguf
import numpy as np
import pytest

from pocketlm.genai.bundler import BundleConfig, create_bundle
from pocketlm.model.forward import KVCache
from pocketlm.model.gguf_reader import GGUFError, GGUFFile
from pocketlm.model.loader import load_model
from tests.fixtures.llama_cpp import SOURCES, fixture_path, source_checkpoint

PROMPT = [1, 17, 200, 33, 5, 99, 250, 7]


def _files():
    files = [fixture_path(n) for n in SOURCES]
    try:
        from pocketlm.builtin import default_model_path

        files.append(default_model_path())
    except FileNotFoundError:
        pass
    return files


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_same_fields_and_tensors_as_the_gguf_package(path):
    ours, ref = GGUFFile(path), gguf.GGUFReader(str(path))
    keys = [k for k in ref.fields if not k.startswith("GGUF.")]
    assert sorted(ours.fields) == sorted(keys)
    for k in keys:
        want = ref.fields[k].contents()
        got = ours.field(k)
        if isinstance(want, float) or (isinstance(want, list) and want and isinstance(want[0], float)):
            np.testing.assert_array_equal(np.float32(got), np.float32(want), err_msg=k)
        else:
            assert got == want, k
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    for a, b in zip(ours.tensors, ref.tensors):
        assert a.tensor_type == int(b.tensor_type) and a.shape == tuple(int(d) for d in b.shape)
        assert np.array_equal(a.data.view(np.uint8).reshape(-1), np.asarray(b.data).view(np.uint8).reshape(-1)), a.name
        assert not a.data.flags.writeable  # a view of the read-only map, not a copy


@pytest.fixture
def bundle(tmp_path):
    folder = source_checkpoint("gemma", tmp_path / "ckpt")
    return create_bundle(BundleConfig(str(fixture_path("gemma")), str(folder / "tokenizer.model"), "<s>", ["</s>"],
                                      output_filename=str(tmp_path / "gemma.task")))


def test_bundle_model_is_mapped_in_place(bundle, monkeypatch):
    import tempfile

    def no_temp_files(*a, **k):
        raise AssertionError("a stored model must not be extracted")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_temp_files)
    monkeypatch.setattr(tempfile, "mkdtemp", no_temp_files)
    model, _, _ = load_model(bundle)
    direct, _, _ = load_model(fixture_path("gemma"))
    np.testing.assert_array_equal(model.forward(PROMPT, KVCache(model.cfg, 8)),
                                  direct.forward(PROMPT, KVCache(direct.cfg, 8)))
    emb = model.w["token_embd.weight"].data
    raw = bundle.read_bytes()
    at = raw.find(emb.tobytes()[:64])  # the table's bytes lie in the bundle at the view's place
    assert at > 0 and raw[at:at + emb.nbytes] == emb.tobytes()


def test_compressed_bundle_still_loads(bundle, tmp_path):
    deflated = tmp_path / "deflated.task"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    a, _, _ = load_model(deflated)
    b, _, _ = load_model(bundle)
    np.testing.assert_array_equal(a.forward(PROMPT, KVCache(a.cfg, 8)), b.forward(PROMPT, KVCache(b.cfg, 8)))


def test_every_truncation_is_refused_by_name(tmp_path):
    data = fixture_path("gpt2").read_bytes()
    cut = tmp_path / "cut.gguf"
    for n in sorted({0, 3, 4, 8, 16, 24, 40, 100, 1000, 5000, 20000, len(data) // 2, len(data) - 1}):
        cut.write_bytes(data[:n])
        with pytest.raises(ValueError, match="cut.gguf"):
            load_model(cut)


def test_damaged_headers_are_refused_by_name(tmp_path):
    data = bytearray(fixture_path("gpt2").read_bytes())

    def damaged(offset, value: bytes, name):
        d = bytearray(data)
        d[offset:offset + len(value)] = value
        p = tmp_path / name
        p.write_bytes(bytes(d))
        return p

    with pytest.raises(GGUFError, match=r"version.gguf: GGUF version 1"):
        GGUFFile(damaged(4, (1).to_bytes(4, "little"), "version.gguf"))
    with pytest.raises(GGUFError, match=r"count.gguf: corrupted header"):
        GGUFFile(damaged(8, (2**40).to_bytes(8, "little"), "count.gguf"))
    with pytest.raises(GGUFError, match=r"keylen.gguf: truncated or corrupted"):
        GGUFFile(damaged(24, (2**50).to_bytes(8, "little"), "keylen.gguf"))  # the first key's length
    with pytest.raises(GGUFError, match=r"vtype.gguf: corrupted: .* unknown value type 99"):
        first_key_len = int.from_bytes(data[24:32], "little")
        GGUFFile(damaged(32 + first_key_len, (99).to_bytes(4, "little"), "vtype.gguf"))


def test_random_corruption_never_escapes_as_another_error(tmp_path):
    data = fixture_path("llama").read_bytes()
    header_end = GGUFFile(fixture_path("llama")).data_start
    rng = np.random.default_rng(0)
    p = tmp_path / "noise.gguf"
    for _ in range(200):
        d = bytearray(data)
        for at in rng.integers(0, header_end, size=4):
            d[at] = int(rng.integers(0, 256))
        p.write_bytes(bytes(d))
        try:
            GGUFFile(p)
        except GGUFError as e:
            assert "noise.gguf" in str(e)
