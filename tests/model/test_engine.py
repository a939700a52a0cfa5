"""The Python engine: weight types, backends and seeded sampling agree."""

import numpy as np
import pytest

from pocketlm import kernels
from pocketlm.model.forward import KVCache, Model
from pocketlm.sampling import Sampler
from tests.fixtures import checkpoints


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return checkpoints.llama(tmp_path_factory.mktemp("llama"))


def generate(model, prompt, n, sampler):
    cache = KVCache(model.cfg, len(prompt) + n)
    logits = model.forward(prompt, cache)
    out = []
    for _ in range(n):
        out.append(sampler.sample(logits[-1]))
        logits = model.forward([out[-1]], cache)
    return out


@pytest.mark.parametrize("backend_name", ["numba", "reference"])
def test_same_seed_same_tokens_on_every_backend(folder, backend_name):
    prompt = [1, 5, 9, 200, 31]
    native = generate(Model.from_pretrained(folder), prompt, 24, Sampler(top_k=40, temperature=0.8, seed=11))
    other_model = Model.from_pretrained(folder, backend=kernels.get_backend(backend_name))
    other = generate(other_model, prompt, 24, Sampler(top_k=40, temperature=0.8, seed=11))
    assert native == other


@pytest.mark.parametrize("weight_type,tol", [("F16", 2e-2), ("Q8_0", 0.1), ("Q4_0", 0.5)])
def test_weight_types_stay_near_f32(folder, weight_type, tol):
    prompt = [1, 17, 200, 33, 5, 99, 250, 7]
    f32 = Model.from_pretrained(folder).forward(prompt, KVCache(Model.from_pretrained(folder).cfg, 16))
    q = Model.from_pretrained(folder, weight_type=weight_type)
    got = q.forward(prompt, KVCache(q.cfg, 16))
    assert np.abs(got - f32).max() / np.abs(f32).max() < tol
    assert q.w["blk.0.attn_q.weight"].qtype == weight_type


def test_prompt_past_the_cache_is_an_error(folder):
    model = Model.from_pretrained(folder)
    with pytest.raises(ValueError, match="do not fit"):
        model.forward(list(range(10)), KVCache(model.cfg, 8))


def test_unsupported_weight_type_is_an_error(folder):
    with pytest.raises(ValueError, match="Q8_0"):
        Model.from_pretrained(folder, weight_type="Q5_K")


def test_f32_weights_stay_memory_mapped(folder):
    model = Model.from_pretrained(folder)
    w = model.w["blk.0.ffn_up.weight"].data
    base = w
    while getattr(base, "base", None) is not None:
        base = base.base
    assert isinstance(base, np.memmap) or type(base).__name__ == "mmap"
