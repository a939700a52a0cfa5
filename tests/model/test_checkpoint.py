"""Checkpoint reading: formats, dtypes, and clear errors."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from pocketlm.model.checkpoint import canonical_tensors, read_checkpoint_tensors, read_safetensors
from pocketlm.model.config import load_config
from tests.fixtures import checkpoints


def test_bf16_and_f16_tensors_read_as_float(tmp_path):
    x = np.array([[1.5, -2.25], [3.0, 0.1]], dtype=np.float32)
    bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)
    save_file({"a": x.astype(np.float16)}, str(tmp_path / "f16.safetensors"))
    t = read_safetensors(tmp_path / "f16.safetensors")
    np.testing.assert_array_equal(t["a"], x.astype(np.float16))
    # safetensors.numpy cannot write BF16; write the header by hand as the format defines it
    header = json.dumps({"b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "bf16.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bf16.tobytes())
    got = read_safetensors(tmp_path / "bf16.safetensors")["b"]
    np.testing.assert_array_equal(got, (bf16.astype(np.uint32) << 16).view(np.float32))
    assert got.dtype == np.float32


def test_sharded_checkpoint_reads_every_tensor(tmp_path):
    single = read_checkpoint_tensors(checkpoints.llama(tmp_path / "one"))
    sharded = read_checkpoint_tensors(checkpoints.llama(tmp_path / "three", shards=3))
    assert single.keys() == sharded.keys()
    for k in single:
        np.testing.assert_array_equal(single[k], sharded[k])


def test_missing_tensor_is_named(tmp_path):
    folder = checkpoints.llama(tmp_path / "m")
    cfg = load_config(folder)
    tensors = read_checkpoint_tensors(folder)
    del tensors["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(ValueError, match=r"blk\.1\.ffn_up\.weight"):
        canonical_tensors(tensors, cfg)


def test_unknown_model_type_is_a_clear_error(tmp_path):
    folder = checkpoints.llama(tmp_path / "u", model_type="mamba")
    with pytest.raises(ValueError, match="unsupported model_type 'mamba'"):
        load_config(folder)


def test_missing_checkpoint_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        read_checkpoint_tensors(tmp_path)
