"""pocketlm: run an on-device LLM on a desktop as MediaPipe's LLM Inference
runs it on Android, and tell whether it fits and how fast it is on a phone.

Kernels live in :mod:`pocketlm.kernels` (native C through cffi, a Numba
fallback, a NumPy reference); everything else builds on them.
"""

__version__ = "0.1.0"
