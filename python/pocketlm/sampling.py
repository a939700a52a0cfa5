"""Next-token sampling as MediaPipe's LLM Inference defines it: topK, topP,
temperature and randomSeed; topK = 1 or temperature = 0 is greedy.

The random stream is NumPy's PCG64 seeded with randomSeed, one uniform draw
per sampled token, independent of the kernel backend, so a seed gives the
same text on every backend (up to logits that tie within float noise).
"""

from __future__ import annotations

import math

import numpy as np


class Sampler:
    def __init__(self, top_k: int = 40, top_p: float = 1.0, temperature: float = 0.8, seed: int = 0):
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"topK must be an integer >= 1, got {top_k!r}")
        if not (isinstance(top_p, (int, float)) and 0.0 < top_p <= 1.0):
            raise ValueError(f"topP must be in (0, 1], got {top_p!r}")
        if not isinstance(temperature, (int, float)) or math.isnan(temperature) or temperature < 0:
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        self.top_k, self.top_p, self.temperature, self.seed = int(top_k), float(top_p), float(temperature), int(seed)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))

    @property
    def greedy(self) -> bool:
        return self.top_k == 1 or self.temperature == 0.0

    def probabilities(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(candidate token ids, their probabilities) after topK, temperature and topP."""
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        k = min(self.top_k, logits.size)
        # top-k, highest first; equal logits: the lower id first, and the lower ids win a tie at the k-th
        # place (argpartition alone would pick among them arbitrarily; the C sampler sorts by the same rule)
        if k < logits.size:
            kth = np.partition(logits, logits.size - k)[logits.size - k]
            above = np.flatnonzero(logits > kth)
            cand = np.concatenate([above, np.flatnonzero(logits == kth)[: k - above.size]])
        else:
            cand = np.arange(logits.size)
        cand = cand[np.lexsort((cand, -logits[cand]))]
        z = logits[cand] / self.temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        if self.top_p < 1.0:  # the smallest prefix whose mass reaches top_p
            keep = int(np.searchsorted(np.cumsum(p), self.top_p) + 1)
            cand, p = cand[:keep], p[:keep] / p[:keep].sum()
        return cand, p

    def sample(self, logits: np.ndarray) -> int:
        if self.greedy:
            return int(np.argmax(logits))
        cand, p = self.probabilities(logits)
        u = self.rng.random()
        return int(cand[min(int(np.searchsorted(np.cumsum(p), u, side="right")), cand.size - 1)])
