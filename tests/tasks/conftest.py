"""Task-API fixtures: a tiny Llama checkpoint with a real byte-level BPE
tokenizer, and a .task bundle of it whose stop token greedy decoding reaches
after a few tokens (so responses end on a stop token, not on maxTokens)."""

import json

import pytest
from pocketlm.genai.bundler import BundleConfig, create_bundle
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint

from tests.fixtures import checkpoints
from tests.fixtures.tokenizers import train_byte_level_bpe

PROMPT = "the model runs on a phone"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    folder = checkpoints.llama(tmp_path_factory.mktemp("task") / "ckpt", vocab_size=320, eos_token_id=0,
                               bos_token_id=1, max_position_embeddings=512)
    train_byte_level_bpe(folder, vocab_size=320)
    # sequences start with <|im_start|> as BOS, as the bundle's start_token below makes them
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"add_bos_token": True, "bos_token": "<|im_start|>", "eos_token": "<|endoftext|>"}))
    return folder


@pytest.fixture(scope="session")
def greedy_ids(model_dir):
    """The token ids greedy decoding gives for PROMPT (engine level, to pick a stop token)."""
    from pocketlm.engine.base import Engine
    from pocketlm.sampling import Sampler

    engine = Engine(model_dir, 64)
    s = engine.new_session(Sampler(top_k=1), None)
    s.add_query_chunk(PROMPT)
    n = s.n_tokens
    s.generate(lambda piece: None)
    return engine.tokenizer, s.tokens[n:]


@pytest.fixture(scope="session")
def bundle(model_dir, greedy_ids, tmp_path_factory):
    """(path, stop id, its position in the greedy output)."""
    tok, ids = greedy_ids
    out = tmp_path_factory.mktemp("bundle")
    gguf_path = convert_checkpoint(ConversionConfig(str(model_dir), "safetensors", None, "cpu", str(out),
                                                    is_quantized=False))
    # a stop token greedy decoding reaches after a few tokens, not the first one
    for pos in range(3, len(ids)):
        text = tok.decode([ids[pos]])
        if ids[pos] not in ids[:pos] and tok.encode(text) == [ids[pos]]:
            break
    else:
        raise AssertionError("no usable stop token in the greedy output")
    path = create_bundle(BundleConfig(str(gguf_path), str(model_dir / "tokenizer.json"), start_token="<|im_start|>",
                                      stop_tokens=["<|endoftext|>", text], output_filename=str(out / "m.task")))
    return path, ids[pos], pos


@pytest.fixture(autouse=True, params=["native", "python"])
def engine_kind(request, monkeypatch):
    """Every task-API test runs on both engines: the C engine (the default) and
    the Python one (the oracle and the fallback without libpocketlm)."""
    if request.param == "native":
        pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
    monkeypatch.setenv("POCKETLM_ENGINE", request.param)
    return request.param
