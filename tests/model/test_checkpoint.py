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
    folder = checkpoints.llama(tmp_path / "u")
    conf = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**conf, "model_type": "mamba"}))
    with pytest.raises(ValueError, match="unsupported model_type 'mamba'"):
        load_config(folder)


def test_missing_checkpoint_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        read_checkpoint_tensors(tmp_path)


def test_pytorch_bin_reads_without_torch_code(tmp_path):
    torch = pytest.importorskip("torch")
    state = {"a": torch.randn(3, 5), "b": torch.randn(4, 2).to(torch.float16), "c": torch.randn(6).to(torch.bfloat16),
             "t": torch.randn(5, 3).t()}  # a non-contiguous view: strides must be honoured
    torch.save(state, tmp_path / "pytorch_model.bin")
    from pocketlm.model.torch_bin import read_torch_bin

    got = read_torch_bin(tmp_path / "pytorch_model.bin")
    np.testing.assert_array_equal(got["a"], state["a"].numpy())
    np.testing.assert_array_equal(got["b"], state["b"].numpy())
    np.testing.assert_array_equal(got["c"], state["c"].float().numpy())
    np.testing.assert_array_equal(got["t"], state["t"].numpy())


def test_pytorch_bin_with_code_is_refused(tmp_path):
    import os
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with zipfile.ZipFile(tmp_path / "pytorch_model.bin", "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}))
    from pocketlm.model.torch_bin import read_torch_bin

    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        read_torch_bin(tmp_path / "pytorch_model.bin")
    assert not (tmp_path / "pwned").exists()


def test_model_loads_from_pytorch_bin(tmp_path):
    torch = pytest.importorskip("torch")
    from pocketlm.model.forward import KVCache, Model

    folder = checkpoints.llama(tmp_path / "st")
    binf = tmp_path / "bin"
    binf.mkdir()
    (binf / "config.json").write_text((folder / "config.json").read_text())
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in read_checkpoint_tensors(folder).items()},
               binf / "pytorch_model.bin")
    a, b = Model.from_pretrained(folder), Model.from_pretrained(binf)
    np.testing.assert_array_equal(a.forward([1, 2, 3], KVCache(a.cfg, 8)), b.forward([1, 2, 3], KVCache(b.cfg, 8)))


def test_tensor_shape_that_contradicts_the_config_is_named(tmp_path):
    folder = checkpoints.llama(tmp_path / "s")
    cfg = load_config(folder)
    tensors = read_checkpoint_tensors(folder)
    tensors["model.layers.0.self_attn.k_proj.weight"] = np.zeros((48, 64), np.float32)
    with pytest.raises(ValueError, match=r"blk\.0\.attn_k\.weight has shape \(48, 64\).*\(32, 64\)"):
        canonical_tensors(tensors, cfg)
