"""A tiny Llama checkpoint with a byte-level BPE tokenizer (every byte is a
token, so any grammar can be written), converted to GGUF, for the litert_lm
API on pocketlm's own engines."""

import json

import pytest
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint

from tests.fixtures import checkpoints
from tests.fixtures.tokenizers import train_byte_level_bpe


@pytest.fixture(scope="session")
def gguf(tmp_path_factory):
    root = tmp_path_factory.mktemp("litertlm")
    folder = checkpoints.llama(root / "ckpt", vocab_size=320, eos_token_id=0, bos_token_id=1,
                               max_position_embeddings=512)
    train_byte_level_bpe(folder, vocab_size=320)
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"add_bos_token": True, "bos_token": "<|im_start|>", "eos_token": "<|endoftext|>"}))
    return convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", str(root / "gguf"),
                                               is_quantized=False))


@pytest.fixture(params=["native", "python"])
def kind(request):
    if request.param == "native":
        pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
    return request.param
