"""pocketlm's error for files it cannot read.

Every failure while opening a model file (GGUF), a .task bundle, a Hugging
Face checkpoint or a tokenizer is a ``ModelFileError`` (a ValueError), whose
message names the file and the part of it that is wrong: a metadata key, a
tensor, a bundle entry, a config key. A missing file stays a
FileNotFoundError, and running out of the simulated device's memory a
DeviceMemoryError: those are not about the file's contents.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


class ModelFileError(ValueError):
    """A model file, bundle, checkpoint or tokenizer that cannot be read."""


@contextmanager
def reading(path: str | Path, what: str):
    """Turns any failure inside the block into a ModelFileError that names
    ``path`` and ``what`` (the field, entry or tensor being read). Errors
    that already are ModelFileErrors pass through unchanged."""
    try:
        yield
    except (ModelFileError, FileNotFoundError, MemoryError, KeyboardInterrupt):
        raise
    except RecursionError as e:
        raise ModelFileError(f"{path}: {what}: nested too deeply to read") from e
    except Exception as e:
        detail = str(e)
        if str(path) in detail:  # the message already names the file: keep it whole
            raise ModelFileError(detail if what in detail else f"{detail} (reading {what})") from e
        name = type(e).__name__
        raise ModelFileError(f"{path}: {what}: {detail}" if name in ("ValueError", "GGUFError")
                             else f"{path}: {what}: {name}: {detail}") from e
