"""Sampling follows MediaPipe's options: topK, topP, temperature, seed."""

import numpy as np
import pytest

from pocketlm.sampling import Sampler


def test_top_k_one_and_temperature_zero_are_greedy():
    logits = np.array([0.1, 3.0, 2.9, -1.0])
    assert Sampler(top_k=1, temperature=1.0).sample(logits) == 1
    assert all(Sampler(top_k=40, temperature=0.0, seed=s).sample(logits) == 1 for s in range(5))


def test_same_seed_same_tokens_different_seed_differs():
    logits = np.random.default_rng(0).standard_normal(100)
    a, b = Sampler(40, 1.0, 1.0, 7), Sampler(40, 1.0, 1.0, 7)
    seq_a = [a.sample(logits) for _ in range(50)]
    assert seq_a == [b.sample(logits) for _ in range(50)]
    c = Sampler(40, 1.0, 1.0, 8)
    assert seq_a != [c.sample(logits) for _ in range(50)]


def test_frequencies_follow_softmax_with_temperature():
    logits = np.array([2.0, 1.0, 0.0, -1.0])
    s = Sampler(top_k=4, temperature=0.5, seed=3)
    counts = np.bincount([s.sample(logits) for _ in range(20000)], minlength=4) / 20000
    want = np.exp(logits / 0.5) / np.exp(logits / 0.5).sum()
    np.testing.assert_allclose(counts, want, atol=0.015)


def test_top_k_and_top_p_restrict_the_candidates():
    logits = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    s = Sampler(top_k=2, temperature=10.0, seed=0)
    assert set(s.sample(logits) for _ in range(500)) == {0, 1}
    cand, p = Sampler(top_k=6, top_p=0.5, temperature=1.0).probabilities(logits)
    full = np.exp(logits - 5) / np.exp(logits - 5).sum()  # 0.63 on token 0: it alone reaches 0.5
    assert list(cand) == [0] and p[0] == 1.0 and full[0] > 0.5
    cand, _ = Sampler(top_k=6, top_p=0.9, temperature=1.0).probabilities(logits)
    assert list(cand) == [0, 1, 2]  # 0.63 + 0.23 < 0.9 <= + 0.086


@pytest.mark.parametrize("kw", [{"top_k": 0}, {"top_k": 2.5}, {"top_p": 0.0}, {"top_p": 1.5},
                                {"temperature": float("nan")}, {"temperature": -0.1}])
def test_bad_options_are_clear_errors(kw):
    with pytest.raises(ValueError):
        Sampler(**kw)
