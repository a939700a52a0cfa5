"""Model description: configs, checkpoints, quantization formats.

Kept import-light: the kernel layer imports :mod:`pocketlm.model.quant`.
"""
