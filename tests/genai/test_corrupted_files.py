"""Corrupted files are refused with pocketlm's error, by name.

Seeded mutants of small real files (a few bytes set to random values in
the parts a parser reads: GGUF header, metadata and embedded tokenizer;
a bundle's zip records, METADATA and tokenizer entries; a checkpoint's
safetensors header, config.json and tokenizer.json). Opening each one,
as LlmInference does, and running a forward step either works (the bytes
hit something that still makes a valid model) or raises ModelFileError
whose message names the file. Any other exception, or a hang, fails.
"""

from __future__ import annotations

import random
import shutil
import signal
import zipfile
from pathlib import Path

import pytest

from pocketlm.engine.base import Engine
from pocketlm.errors import ModelFileError
from pocketlm.genai.bundler import BundleConfig, create_bundle
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
from pocketlm.model.forward import KVCache
from tests.fixtures import checkpoints
from tests.fixtures.tokenizers import train_byte_level_bpe, train_sentencepiece

SMALL = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=32, num_attention_heads=2, num_key_value_heads=1)


def _gguf_metadata_end(path: Path) -> int:
    import gguf

    return int(gguf.GGUFReader(str(path)).data_offset)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mutants")
    sp = checkpoints.llama(root / "sp", vocab_size=700, **SMALL)
    train_sentencepiece(sp, vocab_size=700)
    bpe = checkpoints.llama(root / "bpe", vocab_size=320, eos_token_id=0, **SMALL)
    train_byte_level_bpe(bpe, vocab_size=320)
    sp_model = convert_checkpoint(ConversionConfig(str(sp), "safetensors", None, "cpu", str(root / "o1")))
    bpe_model = convert_checkpoint(ConversionConfig(str(bpe), "safetensors", None, "cpu", str(root / "o2")))
    task = create_bundle(BundleConfig(str(sp_model), str(sp / "tokenizer.model"), "<s>", ["</s>"],
                                      str(root / "m.task"), system_prompt="Be brief.", prompt_prefix="U: ",
                                      prompt_suffix="\nA: "))
    return root, sp_model, bpe_model, task, bpe


def _regions_of_bundle(task: Path) -> list[tuple[int, int]]:
    """Zip records and the small entries; the model entry's own header and metadata too."""
    size = task.stat().st_size
    with zipfile.ZipFile(task) as zf:
        infos = zf.infolist()
    regions = [(i.header_offset, i.header_offset + 30 + len(i.filename)) for i in infos]
    regions.append((size - 22 - 46 * len(infos) - sum(len(i.filename) for i in infos), size))  # central directory
    for i in infos:
        start = i.header_offset + 30 + len(i.filename)
        end = start + (i.file_size if i.filename != "TF_LITE_PREFILL_DECODE" else 2000)
        regions.append((start, min(end, size)))
    return regions


def _open_and_step(path: Path) -> None:
    engine = Engine(path, 16)
    engine.model.forward([1, 2], KVCache(engine.model.cfg, 4))
    if engine.native is not None:  # the C engine opened it too (mapped by itself, or over Python's tensors)
        from pocketlm.engine.native import NativeTokens

        NativeTokens(engine.native, 4).eval([1, 2])


def _timeout(signum, frame):
    raise TimeoutError("hung")


def _run(path: Path, original: bytes, regions: list[tuple[int, int]], n: int, seed: int,
         opened: Path | None = None) -> list[str]:
    """Writes n mutants of ``original`` to ``path`` and opens each (``opened``:
    the folder to open instead, for a file of a checkpoint folder)."""
    opened = opened or path
    rng = random.Random(seed)
    bad = []
    old = signal.signal(signal.SIGALRM, _timeout)
    try:
        for i in range(n):
            data = bytearray(original)
            for _ in range(rng.randint(1, 4)):
                lo, hi = rng.choice(regions)
                data[rng.randrange(lo, hi)] = rng.randrange(256)
            path.write_bytes(bytes(data))
            signal.alarm(10)
            try:
                _open_and_step(opened)
            except ModelFileError as e:
                if str(opened) not in str(e):
                    bad.append(f"mutant {i}: message does not name the file: {e}")
            except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
                bad.append(f"mutant {i}: {type(e).__name__}: {e}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    return bad


def test_mutated_model_files_bundles_and_checkpoints_raise_model_file_error(files):
    root, sp_model, bpe_model, task, bpe_ckpt = files
    failures, total = [], 0
    for src, n, seed in ((sp_model, 900, 1), (bpe_model, 900, 2)):
        original = src.read_bytes()
        failures += _run(root / f"mut-{src.parent.name}.gguf", original, [(0, _gguf_metadata_end(src))], n, seed)
        total += n
    failures += _run(root / "mut.task", task.read_bytes(), _regions_of_bundle(task), 500, 3)
    total += 500
    # checkpoint folders: the safetensors header, config.json, tokenizer.json
    mut = root / "mut-ckpt"
    shutil.copytree(bpe_ckpt, mut)
    for name, n, seed in (("model.safetensors", 150, 4), ("config.json", 100, 5), ("tokenizer.json", 100, 6)):
        original = (bpe_ckpt / name).read_bytes()
        end = 8 + int.from_bytes(original[:8], "little") if name.endswith(".safetensors") else len(original)
        failures += [f"{name} {f}" for f in _run(mut / name, original, [(0, min(end, len(original)))], n, seed,
                                                 opened=mut)]
        (mut / name).write_bytes(original)
        total += n
    assert total >= 2000
    assert not failures, f"{len(failures)} of {total} mutants escaped:\n" + "\n".join(failures[:15])



def test_the_c_engine_refuses_what_the_python_reader_refuses(files):
    """The same verdict on every GGUF mutant: the C engine (plm_model_open:
    its GGUF reader, config reader and tensor checks) opens a file exactly
    when the Python reader builds a model from it. The tokenizer is read by
    Python only, so a mutant Python refuses for its tokenizer alone is not
    counted."""
    native = pytest.importorskip("pocketlm.engine.native")
    pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
    from pocketlm.model.gguf_file import read_gguf

    root, _, bpe_model, _, _ = files
    original = bpe_model.read_bytes()
    end = _gguf_metadata_end(bpe_model)
    rng = random.Random(11)
    path = root / "verdict.gguf"
    disagree, compared = [], 0
    for i in range(600):
        data = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(0, end)] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            read_gguf(path)
            py = None
        except ModelFileError as e:
            py = str(e)
        try:
            native.NativeModel.open(path)
            c = None
        except ModelFileError as e:
            c = str(e)
            assert str(path) in c, c
        if py is not None and "tokenizer" in py and c is None:
            continue
        compared += 1
        if (py is None) != (c is None):
            disagree.append(f"mutant {i}: python {py!r}, C {c!r}")
    assert compared > 300
    assert not disagree, f"{len(disagree)} of {compared} verdicts differ:\n" + "\n".join(disagree[:10])
