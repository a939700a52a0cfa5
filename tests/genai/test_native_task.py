"""libpocketlm's .task reader (native/src/model/task_bundle.c) against Python's
zipfile and parse_metadata: the same entries where they lie, the same
METADATA, the same verdict on mutated METADATA, and no crash on mutated
bundles (a refusal names the file)."""

import random
import zipfile

import pytest

from pocketlm.errors import ModelFileError
from pocketlm.genai.bundler import BundleConfig, create_bundle
from pocketlm.genai.llm_params import build_metadata, parse_metadata
from pocketlm.model.loader import _stored_data_offset
from tests.fixtures.mediapipe import BUNDLE, BUNDLES, FOLDER

native = pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)


def python_view(path):
    with zipfile.ZipFile(path) as zf:
        entries = [(i.filename, _stored_data_offset(path, i), i.file_size, i.compress_type == zipfile.ZIP_STORED)
                   for i in zf.infolist()]
        meta = parse_metadata(zf.read("METADATA")) if "METADATA" in zf.namelist() else None
    return entries, meta


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_mediapipe_bundles_read_the_same(name):
    path = FOLDER / name
    assert path.read_bytes()[:4] != b"PK\x03\x04"  # MediaPipe's bundler pads before the first entry
    assert native.task_read(path) == python_view(path)


def _prefixed(path, prefix: bytes, out):
    """path's archive after prefix, its offsets left relative to the archive's start (as `cat` makes a
    self-extracting file): zip readers find the entries from the end record."""
    out.write_bytes(prefix + path.read_bytes())
    return out


@pytest.mark.parametrize("prefix", [b"\0", b"#!/bin/sh\nexit 0\n", bytes(range(256)) * 17])
def test_an_archive_after_any_prefix_reads_as_zipfile_reads_it(prefix, tmp_path):
    path = _prefixed(BUNDLE, prefix, tmp_path / "prefixed.task")
    entries, meta = python_view(path)
    assert entries[0][1] > len(prefix)  # zipfile found them past the prefix
    assert native.task_read(path) == (entries, meta)


def test_zip64_records_with_a_prefix_read_as_zipfile_reads_them(tmp_path, monkeypatch):
    # zipfile writes the zip64 end record and locator once the directory passes ZIP64_LIMIT: lowered here,
    # so a small bundle carries them as a large one does
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 64)
    plain = tmp_path / "zip64.task"
    with zipfile.ZipFile(BUNDLE) as src, zipfile.ZipFile(plain, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    data = plain.read_bytes()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # the zip64 end record and its locator
    monkeypatch.undo()
    for path in (plain, _prefixed(plain, b"\0" * 12, tmp_path / "prefixed64.task")):
        assert native.task_read(path) == python_view(path)


def test_a_file_that_is_no_zip_is_refused_by_name(tmp_path):
    bad = tmp_path / "notes.task"
    bad.write_bytes(b"\0" * 4 + b"PK\x03\x04" + b"x" * 200)
    with pytest.raises(ModelFileError, match="notes.task.*end-of-central-directory"):
        native.task_read(bad)


def test_pocketlm_bundle_with_every_field_reads_the_same(tmp_path):
    model, tok = tmp_path / "m.bin", tmp_path / "tok.model"
    with zipfile.ZipFile(BUNDLE) as zf:  # a real model file and SentencePiece model to wrap
        model.write_bytes(zf.read("TF_LITE_PREFILL_DECODE"))
        tok.write_bytes(zf.read("TOKENIZER_MODEL"))
    path = create_bundle(BundleConfig(str(model), str(tok), "<s>", ["</s>", "<unk>"],
                                      str(tmp_path / "b.task"), system_prompt="Sé breve.",
                                      prompt_prefix="<start_of_turn>user\n", prompt_suffix="<end_of_turn>\n"))
    assert native.task_read(path) == python_view(path)


def _metadata_variants():
    yield build_metadata("<bos>", ["<eos>"], "sys", "p", "s", bytes_to_unicode=True)
    yield build_metadata("<s>", [], None, None, None)
    with zipfile.ZipFile(BUNDLE) as zf:
        yield zf.read("METADATA")


def test_mutated_metadata_gets_the_same_verdict_and_values():
    rng = random.Random(5)
    compared = accepted = 0
    for base in _metadata_variants():
        for _ in range(700):
            data = bytearray(base)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if data[:1] == b"{":
                continue  # JSON metadata is the Python loader's alone
            try:
                want = parse_metadata(bytes(data))
            except ModelFileError:
                want = None
            assert native.llm_params_parse(bytes(data)) == want, bytes(data)
            compared += 1
            accepted += want is not None
    assert compared > 1500 and 0 < accepted < compared


def test_mutated_bundles_are_read_or_refused_by_name(tmp_path):
    original = BUNDLE.read_bytes()
    rng = random.Random(9)
    path = tmp_path / "mut.task"
    with zipfile.ZipFile(BUNDLE) as zf:
        infos = zf.infolist()
    # the records: local headers, the central directory and the end record
    hot = [(i.header_offset, i.header_offset + 30 + len(i.filename)) for i in infos]
    cd = len(original) - 22 - sum(46 + len(i.filename) for i in infos)
    hot += [(cd, len(original))]
    refused = 0
    for _ in range(800):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            lo, hi = rng.choice(hot)
            data[rng.randrange(lo, hi)] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            entries, _ = native.task_read(path)
        except ModelFileError as e:
            assert str(path) in str(e)
            refused += 1
            continue
        for _name, off, size, stored in entries:
            assert not stored or off + size <= len(data)
    assert refused > 100


def test_not_a_zip_is_refused_by_name(tmp_path):
    p = tmp_path / "x.task"
    p.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ModelFileError, match="x.task.*not a readable .task bundle"):
        native.task_read(p)
