"""A .task made by MediaPipe's own bundler (0.10.21, through
tools/make_mediapipe_fixtures.py) around a pocketlm model file runs with its
start token, stop tokens and prompt template; pocketlm's bundler writes the
same METADATA bytes MediaPipe's does."""

import json
import zipfile

import numpy as np
import pytest

from pocketlm.engine.base import Engine
from pocketlm.errors import ModelFileError
from pocketlm.genai.bundler import BundleConfig, create_bundle
from pocketlm.genai.llm_params import LlmParameters, parse_metadata
from pocketlm.model.forward import KVCache
from pocketlm.model.loader import load_model
from pocketlm.sampling import Sampler
from tests.fixtures.mediapipe import BUNDLE, BUNDLES, FOLDER, SETTINGS, source_model


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return source_model(tmp_path_factory.mktemp("mp"))


def test_mediapipe_bundle_reads_its_llm_parameters():
    _, _, meta = load_model(BUNDLE)
    assert meta["start_token"] == "<s>" and meta["stop_tokens"] == ["</s>", "<unk>"]
    assert meta["system_prompt"] == SETTINGS["system_prompt"]
    assert meta["prompt_prefix"] == SETTINGS["prompt_prefix"] and meta["prompt_suffix"] == SETTINGS["prompt_suffix"]


def test_mediapipe_bundle_runs_the_model_it_wraps(source):
    model_file, _ = source
    bundled, tok, _ = load_model(BUNDLE)
    direct, _, _ = load_model(model_file)
    ids = tok.encode("the model runs on a phone")
    np.testing.assert_allclose(bundled.forward(ids, KVCache(bundled.cfg, 32)),
                               direct.forward(ids, KVCache(direct.cfg, 32)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_every_mediapipe_bundle_runs_the_model_it_wraps_with_its_settings(name, tmp_path):
    make, settings = BUNDLES[name]
    model_file, _ = make(tmp_path)
    bundled, tok, meta = load_model(FOLDER / name)
    direct, _, _ = load_model(model_file)
    ids = tok.encode("the model runs on a phone")
    np.testing.assert_allclose(bundled.forward(ids, KVCache(bundled.cfg, 32)),
                               direct.forward(ids, KVCache(direct.cfg, 32)), atol=1e-5, rtol=1e-5)
    assert meta["start_token"] == settings["start_token"] and meta["stop_tokens"] == settings["stop_tokens"]
    for key in ("system_prompt", "prompt_prefix", "prompt_suffix"):
        assert meta.get(key) == settings.get(key), key


def test_sessions_use_the_bundle_template_system_prompt_and_stops():
    engine = Engine(BUNDLE, 128)
    tok = engine.tokenizer
    session = engine.new_session(Sampler(top_k=1), engine.templates)
    session.add_query_chunk("Hello")
    session.pending += session._encode(engine.templates.user_suffix + engine.templates.model_prefix)
    assert session.pending[0] == tok.special_id("<s>")
    want = SETTINGS["system_prompt"] + SETTINGS["prompt_prefix"] + "Hello" + SETTINGS["prompt_suffix"]
    assert tok.decode(session.pending[1:]) == want
    assert {tok.special_id("</s>"), tok.special_id("<unk>")} <= engine.stop_ids
    # the system prompt opens the session once, not every turn
    session.add_query_chunk("x")
    assert tok.decode(session.pending).count(SETTINGS["system_prompt"].strip()) == 1


def test_pocketlm_writes_the_metadata_mediapipe_writes(source, tmp_path):
    model_file, tokenizer = source
    ours = create_bundle(BundleConfig(str(model_file), str(tokenizer), output_filename=str(tmp_path / "ours"),
                                      **SETTINGS))
    assert ours.name == "ours.task"  # ".task" appended, as MediaPipe does
    with zipfile.ZipFile(ours) as a, zipfile.ZipFile(BUNDLE) as b:
        assert a.read("METADATA") == b.read("METADATA")
        assert [i.filename for i in a.infolist()] == [i.filename for i in b.infolist()]
        params = LlmParameters.FromString(a.read("METADATA"))
    assert params.prompt_template.session_prefix == SETTINGS["system_prompt"]
    assert params.WhichOneof("start_token_union") == "start_token"


def test_older_json_metadata_still_loads(source, tmp_path):
    model_file, tokenizer = source
    old = tmp_path / "old.task"
    with zipfile.ZipFile(old, "w") as zf:
        zf.write(model_file, "TF_LITE_PREFILL_DECODE")
        zf.write(tokenizer, "TOKENIZER_MODEL")
        zf.writestr("METADATA", json.dumps({"start_token": "<s>", "stop_tokens": ["</s>"], "prompt_prefix": None,
                                            "prompt_suffix": None, "enable_bytes_to_unicode_mapping": False}))
    _, _, meta = load_model(old)
    assert meta["start_token"] == "<s>" and meta["stop_tokens"] == ["</s>"]


def test_start_token_id_form_and_bad_metadata(source, tmp_path):
    p = LlmParameters()
    p.start_token_id = 2
    p.stop_tokens.append("</s>")
    assert parse_metadata(p.SerializeToString())["start_token_id"] == 2
    with pytest.raises(ModelFileError, match="not an LlmParameters protobuf"):
        parse_metadata(b"\xff\xff\xff\xff")
    with pytest.raises(ModelFileError, match="stop_tokens must be a list"):
        parse_metadata(b'{"stop_tokens": "</s>"}')
