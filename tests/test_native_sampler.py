"""The C engine's sampler against sampling.py: NumPy's PCG64 stream from the
same seed, and the same token for the same logits and settings, draw after
draw (the promise that one seed gives the same text in both engines)."""

import numpy as np
import pytest

from pocketlm.sampling import Sampler

native = pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)


@pytest.mark.parametrize("seed", [0, 1, 7, 123456789, 2**32 + 5, 2**63 + 11])
def test_random_stream_is_numpys_pcg64(seed):
    ours = native.Sampler(seed=seed)
    ref = np.random.Generator(np.random.PCG64(seed))
    assert [ours.random() for _ in range(200)] == [ref.random() for _ in range(200)]


@pytest.mark.parametrize("top_k,top_p,temperature", [(40, 1.0, 0.8), (1, 1.0, 0.8), (5, 0.9, 1.3), (200, 0.5, 0.7),
                                                      (1000, 1.0, 2.0), (3, 1.0, 0.0), (64, 0.95, 0.3)])
def test_same_tokens_as_the_python_sampler(top_k, top_p, temperature):
    rng = np.random.default_rng(top_k)
    py = Sampler(top_k, top_p, temperature, seed=42)
    c = native.Sampler(top_k, top_p, temperature, seed=42)
    tokens_py, tokens_c = [], []
    for step in range(300):
        logits = (rng.standard_normal(500) * rng.uniform(0.5, 4)).astype(np.float32)
        if step % 7 == 0:
            logits[rng.integers(0, 500, 20)] = logits.max()  # ties at the top: lower id first in both
        tokens_py.append(py.sample(logits))
        tokens_c.append(c.sample(logits))
    assert tokens_c == tokens_py
    assert len(set(tokens_c)) > (1 if top_k == 1 or temperature == 0 else 20)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        native.Sampler(top_k=0).sample(np.zeros(4, np.float32))
    with pytest.raises(ValueError):
        native.Sampler(top_p=1.5).sample(np.zeros(4, np.float32))
