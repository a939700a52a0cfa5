"""`pocketlm fit --model` on the files LiteRT runs: the shape read from the graph equals the source checkpoint's
config, the estimate from the file equals the one from that config for what does not depend on the file, and
what the graph fixes (runtime, weights, cache length) is refused when asked otherwise."""

import copy
import dataclasses
import json

import pytest

from pocketlm import cli, device
from pocketlm.device import fit_profiles, load_profile, shape_from_config, shape_from_litert
from pocketlm.device import litert_shape
from pocketlm.errors import ModelFileError
from pocketlm.model.config import config_from_dict
from pocketlm.model.tflite_file import read_tflite
from tests.fixtures import litert as fx

INT8, F32 = fx.FOLDER / "llama-tiny-int8.litertlm", fx.FOLDER / "llama-tiny-f32.litertlm"
FILES = {INT8: "int8", fx.FOLDER / "llama-tiny-int8.task": "int8", fx.FOLDER / "llama-tiny-int8.tflite": "int8",
         F32: "fp32"}
FIELDS = {"profile", "fits", "memory_bytes", "prefill_tokens_per_s", "decode_tokens_per_s", "time_to_first_token_s"}
# parameters of the graph that are not matrices: 5 RMSNorm weights of 64, rotary inverse frequencies, scalars
SMALL_FLOATS = 2048


def _source_config() -> dict:
    """The config the llama-tiny files were exported from (tests/fixtures/litert.py sp_checkpoint), its vocabulary
    the SentencePiece model's pieces."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(fx.FOLDER / "llama-tiny.tokenizer.model"))
    return fx._llama_config(sp.get_piece_size())


def _fit_json(capsys, *args):
    assert cli.main(["fit", *args, "--json"]) in (None, 0)
    return json.loads(capsys.readouterr().out)


def _fit_args(*args):
    return cli.build_parser().parse_args(["fit", *args])


def test_weight_shapes_hold_each_weight_once():
    g = read_tflite(fx.FOLDER / "llama-tiny-int8.tflite")
    total = 0
    for s in g.weight_shapes:
        n = 1
        for d in s:
            n *= d
        total += n
    assert total == g.parameter_count
    assert g.weight_shapes.count((g.vocab_size, 64)) == 2  # embedding and the untied classifier


@pytest.mark.parametrize("path", list(FILES), ids=lambda p: p.name)
def test_fit_model_gives_litert_the_files_cache_and_weights_for_every_profile(path, capsys):
    out = _fit_json(capsys, "--model", str(path))
    assert out["runtime"] == "litert" and out["max_tokens"] == fx.CACHE_LENGTH and out["weights"] == FILES[path]
    assert out["model"] == path.name
    assert [r["profile"] for r in out["profiles"]] == device.list_profiles()
    for r in out["profiles"]:
        assert FIELDS <= set(r) and r["runtime"] == "litert"
        assert r["decode_tokens_per_s"] > 0 and r["prefill_tokens_per_s"] > 0 and r["time_to_first_token_s"] > 0
        assert r["fits"] == (r["memory_bytes"] <= load_profile(r["profile"]).app_memory_budget)
    # the Python API gives the same numbers
    fit = shape_from_litert(path)
    api = fit_profiles(fit.shape, fit.weights, "litert", fit.cache_length, prefill_signatures=fit.prefill_signatures)
    assert [r.as_dict() for r in api] == out["profiles"]


@pytest.mark.parametrize("path", list(FILES), ids=lambda p: p.name)
def test_the_shape_read_from_the_graph_is_the_source_configs(path):
    fit = shape_from_litert(path)
    from_cfg = shape_from_config(config_from_dict(_source_config()))
    # every field the estimate reads is exact: the layers' matrices are q, k, v, o, gate, up, down, so q_dim and
    # the MLP width (in the activations' bytes) are read, not assumed
    assert dataclasses.replace(fit.shape, file_bytes=0) == from_cfg
    assert fit.cache_length == fx.CACHE_LENGTH and fit.prefill_signatures == fx.PREFILL_LENGTHS
    assert fit.weights == FILES[path]
    # file_bytes: the graph's weight bytes, the matrices at their storage's size plus the float32 norms
    per_weight = 1 if fit.weights == "int8" else 4
    assert per_weight * from_cfg.parameters <= fit.shape.file_bytes <= per_weight * from_cfg.parameters + \
        4 * SMALL_FLOATS


def test_the_config_estimate_equals_the_files_for_what_the_file_does_not_change(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(_source_config()))
    fit = shape_from_litert(INT8)
    args = ("--prompt-tokens", "64", "--decode-tokens", "64")
    from_cfg = _fit_json(capsys, "--config", str(cfg), "--runtime", "litert", "--weights", "int8", "--max-tokens",
                         str(fx.CACHE_LENGTH), *args)
    from_file = _fit_json(capsys, "--model", str(INT8), *args)
    config_weights = shape_from_config(config_from_dict(_source_config())).parameters  # int8: a byte a weight
    for c, f in zip(from_cfg["profiles"], from_file["profiles"], strict=True):
        assert c["profile"] == f["profile"]
        for part in ("KV cache", "runtime"):
            assert c["memory_parts"][part] == f["memory_parts"][part], part
        # a decode step reads the matrices at the type's size, whatever the file's other bytes
        assert f["decode_tokens_per_s"] == c["decode_tokens_per_s"]
        # prefill runs over the file's signatures (8, 32), not litert-torch's default set the config gets, and
        # its activations are the longest signature's
        assert f["prefill_tokens_per_s"] < c["prefill_tokens_per_s"]
        assert f["memory_parts"]["activations"] < c["memory_parts"]["activations"]
    # the config's estimate with the file's signatures: everything but the weights' bytes is the same
    same_signatures = fit_profiles(shape_from_config(config_from_dict(_source_config())), "int8", "litert",
                                   fx.CACHE_LENGTH, 64, 64, prefill_signatures=fit.prefill_signatures)
    for c, f in zip(same_signatures, from_file["profiles"], strict=True):
        c = c.as_dict()
        assert {k: v for k, v in c.items() if k not in ("memory_parts", "memory_bytes", "fits")} == \
            {k: v for k, v in f.items() if k not in ("memory_parts", "memory_bytes", "fits")}
        for part in ("KV cache", "activations", "runtime"):
            assert c["memory_parts"][part] == f["memory_parts"][part], part
        assert f["memory_parts"]["weights"] - c["memory_parts"]["weights"] == fit.shape.file_bytes - config_weights
        assert f["memory_bytes"] - c["memory_bytes"] == fit.shape.file_bytes - config_weights


def test_what_the_graph_fixes_is_refused_when_asked_otherwise():
    for runtime in ("llama.cpp", "pocketlm"):
        with pytest.raises(ValueError, match=f"--runtime {runtime}: .* runs only on LiteRT"):
            cli._fit(_fit_args("--model", str(INT8), "--runtime", runtime))
    with pytest.raises(ValueError, match=f"--max-tokens 512: .*fixed in the graph at {fx.CACHE_LENGTH}"):
        cli._fit(_fit_args("--model", str(INT8), "--max-tokens", "512"))
    with pytest.raises(ValueError, match="--weights int4: .* stores its weights as int8"):
        cli._fit(_fit_args("--model", str(INT8), "--weights", "int4"))
    with pytest.raises(ValueError, match="--weights int8: .* stores its weights as fp32"):
        cli._fit(_fit_args("--model", str(F32), "--weights", "int8"))
    with pytest.raises(ModelFileError, match="whole-generation graph"):
        shape_from_litert(fx.FOLDER / "gpt2-keras-int8.tflite")


def test_the_files_own_cache_runtime_and_weights_are_accepted_when_named(capsys):
    out = _fit_json(capsys, "--model", str(INT8), "--runtime", "litert", "--weights", "int8", "--max-tokens",
                    str(fx.CACHE_LENGTH))
    assert out["max_tokens"] == fx.CACHE_LENGTH


def _graph_with(path, change):
    """The prefill/decode graph of a file, its decode signature's inputs changed by change(inputs)."""
    g = copy.deepcopy(read_tflite(path))
    change(next(s for s in g.signatures if s.kind == "decode").inputs)
    return g


def test_layers_whose_cache_is_shorter_are_sliding_window_layers(monkeypatch):
    def window_layer_1(inputs):
        for t in inputs:
            if t.name == "kv_cache_k_1":
                t.shape = (*t.shape[:2], 64, t.shape[3])  # K: [1, heads, cache_length, head_dim]

    plain = shape_from_litert(fx.FOLDER / "llama-tiny-int8.tflite").shape
    graph = _graph_with(fx.FOLDER / "llama-tiny-int8.tflite", window_layer_1)
    monkeypatch.setattr(litert_shape, "_graphs", lambda p, kind: (graph, None, 0))
    fit = shape_from_litert(fx.FOLDER / "llama-tiny-int8.tflite")
    assert fit.shape.window_layers == (1,) and fit.shape.window == 64
    assert dataclasses.replace(fit.shape, window_layers=(), window=0) == plain
    from pocketlm.device.runtimes import kv_cache_bytes

    assert kv_cache_bytes(fit.shape, "litert", 256) == kv_cache_bytes(plain, "litert", 256) * (256 + 64) // 512


def test_a_cache_of_other_heads_in_one_layer_is_refused(monkeypatch):
    def other_heads(inputs):
        for t in inputs:
            if t.name == "kv_cache_k_1":
                t.shape = (1, 4, *t.shape[2:])

    graph = _graph_with(fx.FOLDER / "llama-tiny-int8.tflite", other_heads)
    monkeypatch.setattr(litert_shape, "_graphs", lambda p, kind: (graph, None, 0))
    with pytest.raises(ModelFileError, match="kv_cache_k_1 .* one KV width"):
        shape_from_litert(fx.FOLDER / "llama-tiny-int8.tflite")


def test_a_graph_without_an_embedding_table_is_refused_by_name(monkeypatch):
    graph = copy.deepcopy(read_tflite(fx.FOLDER / "llama-tiny-int8.tflite"))
    graph.weight_shapes = [s for s in graph.weight_shapes if s[:1] != (graph.vocab_size,)]
    monkeypatch.setattr(litert_shape, "_graphs", lambda p, kind: (graph, None, 0))
    with pytest.raises(ModelFileError, match=r"no embedding table \(\[500, hidden\] weight"):
        shape_from_litert(fx.FOLDER / "llama-tiny-int8.tflite")


def test_one_vocabulary_table_is_a_tied_classifier(monkeypatch):
    graph = copy.deepcopy(read_tflite(fx.FOLDER / "llama-tiny-int8.tflite"))
    table = (graph.vocab_size, 64)
    graph.weight_shapes.remove(table)  # the graph keeps one [vocab, hidden] table
    monkeypatch.setattr(litert_shape, "_graphs", lambda p, kind: (graph, None, 0))
    fit = shape_from_litert(fx.FOLDER / "llama-tiny-int8.tflite")
    tied = shape_from_config(config_from_dict({**_source_config(), "tie_word_embeddings": True}))
    assert dataclasses.replace(fit.shape, file_bytes=0) == tied


def _layers(n, *shapes):
    return [s for s in shapes for _ in range(n)]


def test_q_width_and_mlp_width_are_read_from_one_layers_matrices():
    read = litert_shape._attention_and_mlp
    # q wider than hidden (Gemma's 4 heads of 32 over 64), a gated MLP of 256
    assert read(_layers(3, (128, 64), (32, 64), (32, 64), (64, 128), (256, 64), (256, 64), (64, 256)), 3, 64, 32) == \
        (128, 256)
    # fused qkv (GPT-2's), a plain MLP
    assert read(_layers(2, (192, 64), (64, 64), (256, 64), (64, 256)), 2, 64, 64) == (64, 256)
    # fused gate-up
    assert read(_layers(2, (64, 64), (64, 64), (16, 64), (16, 64), (256, 64), (64, 128)), 2, 64, 16) == (64, 128)
    # q 96 beside an MLP of 128, or q 128 beside an MLP of 96: both readings fit, so neither is taken
    assert read(_layers(2, (96, 64), (64, 96), (32, 64), (32, 64), (128, 64), (64, 128)), 2, 64, 32) == (None, None)
    # layers that differ
    assert read([(64, 64), (64, 64), (32, 64), (32, 64), (128, 64), (128, 64), (64, 128)] * 2 + [(64, 64)], 2, 64,
                32) == (None, None)


def test_an_ambiguous_layer_takes_q_of_hidden_width(monkeypatch):
    graph = copy.deepcopy(read_tflite(fx.FOLDER / "llama-tiny-int8.tflite"))
    table = (graph.vocab_size, 64)
    graph.weight_shapes = [table, table] + _layers(2, (96, 64), (64, 96), (32, 64), (32, 64), (128, 64), (64, 128))
    monkeypatch.setattr(litert_shape, "_graphs", lambda p, kind: (graph, None, 0))
    shape = shape_from_litert(fx.FOLDER / "llama-tiny-int8.tflite").shape
    assert shape.q_dim == 64 and shape.layer_params == 2 * 96 * 64 + 2 * 32 * 64 + 2 * 128 * 64


def test_a_q_wider_than_hidden_is_read_from_the_graph(monkeypatch):
    graph = copy.deepcopy(read_tflite(fx.FOLDER / "llama-tiny-int8.tflite"))  # its cache: 2 KV heads of 16
    table = (graph.vocab_size, 64)
    graph.weight_shapes = [table, table] + _layers(2, (128, 64), (32, 64), (32, 64), (64, 128), (256, 64), (256, 64),
                                                   (64, 256))
    monkeypatch.setattr(litert_shape, "_graphs", lambda p, kind: (graph, None, 0))
    shape = shape_from_litert(fx.FOLDER / "llama-tiny-int8.tflite").shape
    wide = {**_source_config(), "num_attention_heads": 8, "head_dim": 16, "intermediate_size": 256}
    assert dataclasses.replace(shape, file_bytes=0) == shape_from_config(config_from_dict(wide))
