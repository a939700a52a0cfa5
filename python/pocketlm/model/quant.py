"""The tensor types pocketlm stores weights in, as one table.

This mirrors the C traits table (native/src/kernels/common.c, pocketlm.h's
``plm_type``): ids are GGML's, blocks are GGUF's byte layouts. It is pure
data plus small helpers and must stay free of heavy imports, since the
kernel layer and every backend read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QK = 32  # values per quantization block (GGUF's QK8_0 / QK4_0 / QK4_1)


@dataclass(frozen=True)
class QuantType:
    """One tensor type: how many values a block holds and how many bytes it takes."""

    id: int  # GGML / GGUF type id
    name: str  # GGUF's name
    block_size: int  # values per block (1 for F32 / F16)
    block_bytes: int  # bytes per block
    storage: np.dtype  # dtype of the array holding a weight matrix of this type
    act_type: str  # format the activations take in a product: "F32" or "Q8_0"

    @property
    def is_block(self) -> bool:
        return self.block_size > 1

    def row_bytes(self, k: int) -> int:
        """Bytes of one row of ``k`` values; ValueError if ``k`` does not fill whole blocks."""
        check_row_length(self, k)
        return k // self.block_size * self.block_bytes

    def bytes_per_weight(self) -> float:
        return self.block_bytes / self.block_size


F32 = QuantType(0, "F32", 1, 4, np.dtype(np.float32), "F32")
F16 = QuantType(1, "F16", 1, 2, np.dtype(np.float16), "F32")
Q4_0 = QuantType(2, "Q4_0", QK, 2 + QK // 2, np.dtype(np.uint8), "Q8_0")  # fp16 d, 16 B nibbles
Q4_1 = QuantType(3, "Q4_1", QK, 4 + QK // 2, np.dtype(np.uint8), "Q8_0")  # fp16 d, fp16 m, 16 B nibbles
Q8_0 = QuantType(8, "Q8_0", QK, 2 + QK, np.dtype(np.uint8), "Q8_0")  # fp16 d, 32 int8

QUANT_TYPES: dict[str, QuantType] = {t.name: t for t in (F32, F16, Q4_0, Q4_1, Q8_0)}
_BY_ID = {t.id: t for t in QUANT_TYPES.values()}


def quant_type(qtype: "QuantType | str | int") -> QuantType:
    """Look a type up by QuantType, name (case-insensitive) or GGML id."""
    if isinstance(qtype, QuantType):
        return qtype
    if isinstance(qtype, str):
        t = QUANT_TYPES.get(qtype.upper())
    elif isinstance(qtype, (int, np.integer)) and not isinstance(qtype, bool):
        t = _BY_ID.get(int(qtype))
    else:
        t = None
    if t is None:
        raise ValueError(f"unknown tensor type {qtype!r}; expected one of {', '.join(QUANT_TYPES)}")
    return t


def check_row_length(qt: QuantType, k: int) -> None:
    if k < 0:
        raise ValueError(f"row length must be >= 0, got {k}")
    if k % qt.block_size:
        raise ValueError(
            f"{qt.name} rows hold whole blocks of {qt.block_size} values; "
            f"a row of {k} values is not a multiple of {qt.block_size}"
        )
