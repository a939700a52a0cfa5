"""The files phones run (.litertlm, a TFLite .task, .tflite) read without the
LiteRT runtime: pocketlm's readers (model/litertlm_file.py over LiteRT-LM's
own schema code, model/tflite_file.py over TFLite's, and libpocketlm's C
reader native/src/model/litertlm.c) against what the real tools recorded
(tests/fixtures/litert/fixtures.json), C against Python on every fixture and
on files litert-lm-builder writes with more metadata, and 1,000 mutated
.litertlm files plus mutated .task bundles, each read or refused with a
ModelFileError naming the file, never a crash or a hang, in Python and in C;
then `pocketlm info` on each file.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

from pocketlm.errors import ModelFileError
from tests.fixtures.litert import FIXTURES_JSON, FOLDER

pytest.importorskip("litert_lm_builder", reason="LiteRT-LM's schema code (pip install pocketlm[litert])")
pytest.importorskip("tflite", reason="TFLite's schema code (pip install pocketlm[litert])")

from pocketlm.model.litertlm_file import describe_task_model, read_litertlm  # noqa: E402
from pocketlm.model.tflite_file import read_tflite  # noqa: E402

RECORDED = json.loads(FIXTURES_JSON.read_text())["files"]
LITERTLM = ["llama-tiny-int8.litertlm", "llama-tiny-f32.litertlm", "llama-bpe-int8.litertlm"]
TASKS = ["llama-tiny-int8.task", "llama-bpe-int8.task"]
# SmolLM2-135M-Instruct's chat template: it adds message['content'] to strings, which LiteRT-LM's Conversation
# hands over as a list of text parts, so MiniJinja cannot render it there
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def native():
    try:
        from pocketlm.kernels import native as n
    except ImportError as e:
        pytest.skip(f"libpocketlm is not built: {e}")
    return n


# -- files the real builder writes with more of LlmMetadata set ------------------------------------------------------


def build_litertlm(out: Path, meta, tokenizer: tuple[str, Path], tflite: Path = FOLDER / "llama-tiny-int8.tflite"):
    """A .litertlm written by litert-lm-builder's LitertLmFileBuilder: LlmMetadata `meta` (a message), the tokenizer
    ("sp", model file) or ("hf", tokenizer.json or .zlib), the TFLite model as tf_lite_prefill_decode."""
    from litert_lm_builder import litertlm_builder as lb

    pb = out.with_suffix(".pb")
    pb.write_bytes(meta.SerializeToString())
    b = lb.LitertLmFileBuilder()
    b.add_llm_metadata(str(pb))
    if tokenizer[0] == "sp":
        b.add_sentencepiece_tokenizer(str(tokenizer[1]))
    else:
        b.add_hf_tokenizer(str(tokenizer[1]))
    b.add_tflite_model(str(tflite), lb.TfLiteModelType.PREFILL_DECODE, backend_constraint="cpu")
    with open(out, "wb") as f:
        b.build(f)
    return out


def rich_metadata(template: str = SMOLLM2_TEMPLATE):
    from litert_lm_builder.runtime.proto import llm_metadata_pb2

    m = llm_metadata_pb2.LlmMetadata()
    m.start_token.token_ids.ids.append(1)
    m.stop_tokens.add().token_str = "<|im_end|>"
    m.stop_tokens.add().token_ids.ids.extend([2, 3])
    m.stop_tokens.add().token_ids.ids.append(0)
    for role in ("user", "model", "system"):
        affixes = getattr(m.prompt_templates, role)
        affixes.prefix, affixes.suffix = f"<|im_start|>{role}\n", "<|im_end|>\n"
    m.sampler_params.type = m.sampler_params.TOP_P
    m.sampler_params.k, m.sampler_params.p, m.sampler_params.temperature, m.sampler_params.seed = 40, 0.9, 0.7, 7
    m.max_num_tokens = 1024
    m.llm_model_type.qwen3.SetInParent()
    m.jinja_prompt_template = template
    return m


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Builder-made files: SentencePiece + every metadata field C reads, and tokenizer.json + start token text."""
    root = tmp_path_factory.mktemp("built")
    hf = root / "tokenizer.json"
    hf.write_bytes(read_litertlm(FOLDER / "llama-bpe-int8.litertlm", read_graphs=False).tokenizer.data)
    rich = build_litertlm(root / "rich.litertlm", rich_metadata(), ("sp", FOLDER / "llama-tiny.tokenizer.model"))
    m = rich_metadata("{{ messages[0]['content'][0]['text'] }}")
    m.ClearField("prompt_templates")
    m.ClearField("start_token")
    m.start_token.token_str = "<|im_start|>"
    m.llm_model_type.Clear()
    hf_file = build_litertlm(root / "hf.litertlm", m, ("hf", hf))
    return {"rich.litertlm": rich, "hf.litertlm": hf_file, "root": root}


# -- the recorded facts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LITERTLM)
def test_sections_and_metadata_are_the_recorded_ones(name):
    from google.protobuf.json_format import MessageToDict

    f = read_litertlm(FOLDER / name)
    rec = RECORDED[name]
    assert f.version == (1, 7, 0) and f.file_size == rec["bytes"]
    assert [{"type": s.type_name, "begin": s.offset, "end": s.offset + s.size, "items": s.items} for s in f.sections] \
        == rec["sections"]
    assert MessageToDict(f.llm_metadata_message) == rec["llm_metadata"]
    assert f.executor_metadata == rec["executor_metadata"]
    meta = f.llm_metadata  # in pocketlm's names
    assert meta["start_token"] == rec["llm_metadata"]["startToken"]["tokenStr"]
    assert meta["stop_token_ids"] == [t["tokenIds"]["ids"] for t in rec["llm_metadata"]["stopTokens"] if "tokenIds" in t]
    assert meta["stop_tokens"] == [t["tokenStr"] for t in rec["llm_metadata"]["stopTokens"] if "tokenStr" in t]
    assert meta["chat_template"] == rec["llm_metadata"]["jinjaPromptTemplate"]
    assert meta["max_num_tokens"] == 256 and meta["llm_model_type"] == "generic_model"
    assert list(f.model_sections()) == ["tf_lite_prefill_decode"]


def test_tokenizers_come_out_whole():
    sp = read_litertlm(FOLDER / "llama-tiny-int8.litertlm", read_graphs=False).tokenizer
    assert sp.kind == "sentencepiece" and sp.data == (FOLDER / "llama-tiny.tokenizer.model").read_bytes()
    hf = read_litertlm(FOLDER / "llama-bpe-int8.litertlm", read_graphs=False).tokenizer
    assert hf.kind == "tokenizer.json" and hf.section == 2 and hf.compressed_size == 3174 - 8
    assert json.loads(hf.text)["model"]["type"] == "BPE"


def _signatures(g) -> dict:
    return {s.name: {"inputs": {t.name: {"shape": list(t.shape), "dtype": t.dtype} for t in s.inputs},
                     "outputs": {t.name: {"shape": list(t.shape), "dtype": t.dtype} for t in s.outputs}}
            for s in g.signatures}


def _strip(sigs: dict) -> dict:
    return {k: {io: {n: {"shape": t["shape"], "dtype": t["dtype"]} for n, t in v[io].items()} for io in v}
            for k, v in sigs.items()}


@pytest.mark.parametrize("name", LITERTLM + TASKS + ["llama-tiny-int8.tflite"])
def test_graph_signatures_and_kv_cache_are_the_recorded_ones(name):
    g = (read_litertlm(FOLDER / name).model() if name.endswith(".litertlm") else
         describe_task_model(FOLDER / name).tflite if name.endswith(".task") else read_tflite(FOLDER / name))
    rec = RECORDED[name]
    assert _signatures(g) == _strip(rec["signatures"])
    assert g.prefill_lengths == [8, 32] and g.decode and not g.whole_generation
    kv = rec["kv_cache"]
    assert (g.kv_cache.n_layers, g.kv_cache.cache_length, g.kv_cache.dtype) == (kv["layers"], kv["cache_length"],
                                                                                 kv["dtype"])
    assert list(g.kv_cache.k_shape) == kv["k_shape"] and list(g.kv_cache.v_shape) == kv["v_shape"]
    assert f"[{', '.join(g.kv_cache.k_axes)}]" == kv["k_layout"] and f"[{', '.join(g.kv_cache.v_axes)}]" == \
        kv["v_layout"]
    assert g.kv_cache.v_transposed and (g.kv_cache.n_kv_heads, g.kv_cache.head_dim) == (2, 16)
    assert g.vocab_size == g.signatures[-1].output("logits").shape[-1]
    assert g.composites == {"odml.rms_norm": 11} and not g.flex_ops and not g.custom_ops


def test_weight_types_and_parameters():
    int8, f32 = (read_litertlm(FOLDER / n).model() for n in ("llama-tiny-int8.litertlm", "llama-tiny-f32.litertlm"))
    assert set(int8.weights) == {"int8 per-channel", "float32"} and set(f32.weights) == {"float32"}
    assert int8.parameter_count == f32.parameter_count  # one architecture, two storages
    assert f32.weight_bytes == 4 * f32.parameter_count
    assert int8.weight_bytes == int8.weights["int8 per-channel"] + 4 * int8.weights["float32"]
    assert int8.external_parameters == 0


def test_whole_generation_graph_with_select_tf_ops():
    g = read_tflite(FOLDER / "gpt2-keras-int8.tflite")
    assert _signatures(g) == _strip(RECORDED["gpt2-keras-int8.tflite"]["signatures"])
    assert g.whole_generation == ["serving_default"] and not g.decode and g.kv_cache is None
    assert "RegexSplitWithOffsets" in g.flex_ops and g.tf_text_ops == ["RegexSplitWithOffsets"]
    assert {"int8 per-channel", "int8 per-tensor", "float32"} == set(g.weights)


def test_external_buffers_and_blockwise_int4_from_the_newer_schema(tmp_path):
    """Fields TFLite's schema gained after the `tflite` package (Tensor.external_buffer, Model.external_buffers,
    BlockwiseQuantization), written here with the runtime's generated schema code, as converters write them."""
    import flatbuffers

    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    m = schema.ModelT.InitFromPackedBuf((FOLDER / "llama-tiny-int8.tflite").read_bytes(), 0)
    decode = m.subgraphs[2]
    lm_head, down = decode.tensors[7], decode.tensors[8]  # int8 [500, 64] and [64, 128]
    nbytes = len(m.buffers[lm_head.buffer].data)
    m.buffers[lm_head.buffer].data = None
    group, ext = schema.ExternalBufferGroupT(), schema.ExternalBufferT()
    group.name, ext.id, ext.group, ext.offset, ext.length = "weights", 1, 0, 0, nbytes
    m.externalBufferGroups, m.externalBuffers, lm_head.externalBuffer = [group], [ext], 1
    block = schema.BlockwiseQuantizationT()
    block.blockSize = 32
    down.type = schema.TensorType.INT4
    down.quantization.detailsType, down.quantization.details = schema.QuantizationDetails.BlockwiseQuantization, block
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    path = tmp_path / "external.tflite"
    path.write_bytes(b.Output())
    g = read_tflite(path)
    assert g.weights["int4 blockwise 32"] == 64 * 128 and g.external_parameters == 500 * 64
    assert g.external_groups == ["weights"] and g.external_end == nbytes
    assert g.parameter_count == read_tflite(FOLDER / "llama-tiny-int8.tflite").parameter_count
    assert "in external buffers (weights)" in info(path)

    # in a .litertlm, the external buffers must lie inside the TFLiteWeights section of the same model_type
    from litert_lm_builder import litertlm_builder as lb

    for size, ok in ((nbytes, True), (nbytes - 1, False)):
        weights = tmp_path / f"w{size}.bin"
        weights.write_bytes(bytes(size))
        builder = lb.LitertLmFileBuilder()
        builder.add_sentencepiece_tokenizer(str(FOLDER / "llama-tiny.tokenizer.model"))
        builder.add_tflite_model(str(path), lb.TfLiteModelType.PREFILL_DECODE)
        builder.add_tflite_weights(str(weights), lb.TfLiteModelType.PREFILL_DECODE)
        out = tmp_path / f"w{size}.litertlm"
        with open(out, "wb") as f:
            builder.build(f)
        if ok:
            assert read_litertlm(out).model().external_parameters == 500 * 64
        else:
            with pytest.raises(ModelFileError, match=r"section 1 \(TFLiteModel\): its external buffers run past the "
                                                     r"end of section 2 \(TFLiteWeights\)"):
                read_litertlm(out)


def test_a_task_tells_a_tflite_model_from_a_gguf():
    for name in TASKS:
        t = describe_task_model(FOLDER / name)
        assert t.kind == "tflite" and not t.compressed and t.size == RECORDED[name]["entries"]["TF_LITE_PREFILL_DECODE"]
        with open(FOLDER / name, "rb") as f:
            f.seek(t.offset)
            assert f.read(8)[4:] == b"TFL3"
    gguf = describe_task_model(FOLDER.parent / "mediapipe" / "llama-tiny.task")
    assert gguf.kind == "gguf" and gguf.tflite is None and gguf.head[:4] == b"GGUF"


def test_a_cut_file_names_the_section_in_python_and_c(tmp_path):
    data = (FOLDER / "llama-tiny-int8.litertlm").read_bytes()
    cut = tmp_path / "x.litertlm"
    cut.write_bytes(data[:100000])
    want = f"{cut}: section 3 (TFLiteModel) runs past the end of the file (ends at 482992, the file has 100000 bytes)"
    with pytest.raises(ModelFileError) as e:
        read_litertlm(cut)
    assert str(e.value) == want
    with pytest.raises(ModelFileError) as e:
        native().litertlm_read(cut)
    assert str(e.value) == want


# -- C against Python -----------------------------------------------------------------------------------------------


def _c_view_of(f) -> dict:
    """What the C reader gives for a file, computed from the Python reader's result."""
    from litert_lm_builder.runtime.proto import llm_model_type_pb2

    fields = llm_model_type_pb2.LlmModelType.DESCRIPTOR.fields_by_name
    meta = None
    if f.llm_metadata_message is not None:
        keep = ("start_token", "start_token_ids", "start_token_id", "stop_tokens", "stop_token_ids", "chat_template",
                "max_num_tokens") + tuple(f"{r}_{a}" for r in ("user", "model", "system") for a in ("prefix", "suffix"))
        meta = {k: v for k, v in f.llm_metadata.items() if k in keep}
        if "llm_model_type" in f.llm_metadata:
            meta["llm_model_type_field"] = fields[f.llm_metadata["llm_model_type"]].number
    tok = (f.tokenizer.kind, f.tokenizer.data) if f.tokenizer else None
    return {"version": f.version, "sections": [(s.data_type, s.offset, s.size, s.model_type) for s in f.sections],
            "llm_metadata": meta, "tokenizer": tok}


def test_c_reads_every_fixture_as_python_does(built):
    n = native()
    if not n.litertlm_has_zlib():
        pytest.skip("this libpocketlm was built without zlib")
    paths = [FOLDER / name for name in LITERTLM] + [built["rich.litertlm"], built["hf.litertlm"]]
    for p in paths:
        assert n.litertlm_read(p) == _c_view_of(read_litertlm(p, read_graphs=False)), p
    rich = n.litertlm_read(built["rich.litertlm"])["llm_metadata"]
    assert rich["start_token_id"] == 1 and rich["stop_token_ids"] == [[2, 3], [0]] and rich["stop_tokens"] == \
        ["<|im_end|>"]
    assert rich["system_prefix"] == "<|im_start|>system\n" and rich["max_num_tokens"] == 1024
    assert rich["llm_model_type_field"] == 5 and rich["chat_template"] == SMOLLM2_TEMPLATE  # qwen3


def test_a_tokenizer_json_is_inflated_to_its_declared_size_only(built):
    """HF_Tokenizer_Zlib's 8-byte size is checked both ways, and a stream that inflates past it stops there."""
    n = native()
    root, text = built["root"], (built["root"] / "tokenizer.json").read_bytes()
    cases = {
        "short": (len(text) + 5, zlib.compress(text), f"inflates to {len(text)} bytes, not the {len(text) + 5}"),
        "long": (len(text) - 5, zlib.compress(text), "inflates to more than"),
        "huge": (1 << 40, zlib.compress(text), "declares a tokenizer.json of 1099511627776 bytes"),
        "bomb": (1000, zlib.compress(b"\0" * (64 << 20)), "inflates to more than the 1000 bytes"),
        "cut": (len(text), zlib.compress(text)[:-40], "the zlib stream is cut short"),
        "garbage": (len(text), b"not zlib at all", "not a zlib stream"),
    }
    meta = rich_metadata()
    for name, (declared, stream, message) in cases.items():
        z = root / f"{name}.zlib"
        z.write_bytes(struct.pack("<Q", declared) + stream)
        path = build_litertlm(root / f"{name}.litertlm", meta, ("hf", z))
        with pytest.raises(ModelFileError, match=message) as e:
            read_litertlm(path, read_graphs=False)
        assert f"{path}: section 1 (HF_Tokenizer_Zlib)" in str(e.value)
        if n.litertlm_has_zlib():
            with pytest.raises(ModelFileError, match=message) as c:
                n.litertlm_read(path)
            assert str(c.value) == str(e.value) or name == "garbage"


# -- mutants ----------------------------------------------------------------------------------------------------------

INTERESTING = (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 16384, 65536, 1 << 20)


def _litertlm_mutant(rng: random.Random, data: bytes) -> bytes:
    """A few bytes changed where the readers look: the header (its flatbuffer and section table), LlmMetadata, the
    tokenizer, the start of the TFLite graph; or the file cut short."""
    header_end = struct.unpack_from("<Q", data, 24)[0]
    regions = [(0, header_end), (16384, 16384 + 650), (49152, 49152 + 3200), (65536, 65536 + 4000)]
    b = bytearray(data)
    kind = rng.random()
    if kind < 0.1:
        return bytes(b[:rng.randrange(len(b))])
    if kind < 0.35:  # a whole field of the header rewritten: offsets, lengths, vtable entries
        at = rng.randrange(32, header_end - 8) & ~3
        value = rng.choice(INTERESTING + (len(data), len(data) + 1, header_end))
        if rng.random() < 0.3:
            struct.pack_into("<Q", b, at, value)
        else:
            struct.pack_into("<I", b, at, value & 0xFFFFFFFF)
        return bytes(b)
    for _ in range(rng.randint(1, 6)):
        lo, hi = rng.choice(regions)
        b[rng.randrange(lo, min(hi, len(b)))] = rng.randrange(256)
    return bytes(b)


def _alarm(signum, frame):
    raise TimeoutError("hung")


def _python_read(path: Path, reader) -> tuple[bool, object]:
    """(read, result or message); only a ModelFileError naming the file may refuse it, within 10 s."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        return True, reader(path)
    except ModelFileError as e:
        assert str(path) in str(e), f"a refusal without the file's name: {e}"
        return False, str(e)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_C_RUNNER = textwrap.dedent("""
    import hashlib, json, sys
    from pocketlm.errors import ModelFileError
    from pocketlm.kernels import native
    for line in sys.stdin:
        kind, path = json.loads(line)
        try:
            r = native.litertlm_read(path) if kind == "litertlm" else native.task_read(path)
            if kind == "litertlm" and r["tokenizer"] is not None:
                r["tokenizer"] = [r["tokenizer"][0], hashlib.sha256(r["tokenizer"][1]).hexdigest()]
            out = {"ok": True, "result": r if kind == "litertlm" else None}
        except ModelFileError as e:
            out = {"ok": False, "error": str(e)}
        print(json.dumps(out), flush=True)
""")


def _c_read_all(items: list[tuple[str, Path]]) -> list[dict]:
    """Each file through libpocketlm's readers, in a process of their own: a crash there fails the test by its exit
    status instead of taking pytest down, and a hang by the timeout."""
    native()
    stdin = "".join(json.dumps([k, str(p)]) + "\n" for k, p in items)
    proc = subprocess.run([sys.executable, "-c", _C_RUNNER], input=stdin, capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, f"the C reader died (status {proc.returncode}): {proc.stderr[-3000:]}"
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == len(items)
    return out


def _jsonable(view: dict) -> dict:
    """_c_view_of's dict as it comes back from the C runner (JSON, the tokenizer by its hash)."""
    tok = view["tokenizer"]
    view = dict(view, tokenizer=[tok[0], hashlib.sha256(tok[1]).hexdigest()] if tok is not None else None)
    return json.loads(json.dumps(view))


def test_1000_mutated_litertlm_files_are_read_or_refused_by_name_in_python_and_c(tmp_path, built):
    rng = random.Random(20251201)
    bases = [(FOLDER / n).read_bytes() for n in LITERTLM] + [built["rich.litertlm"].read_bytes()]
    paths = []
    for i in range(1000):
        p = tmp_path / f"m{i}.litertlm"
        p.write_bytes(_litertlm_mutant(rng, bases[i % len(bases)]))
        paths.append(p)
    python = [_python_read(p, read_litertlm) for p in paths]
    c = _c_read_all([("litertlm", p) for p in paths])
    n = native()
    both = 0
    for p, (ok, result), cr in zip(paths, python, c):
        if not cr["ok"]:
            assert str(p) in cr["error"], f"C refused without the file's name: {cr['error']}"
            # C reads less than Python (no system metadata, no graph), so it refuses nothing Python reads
            assert not ok or (not n.litertlm_has_zlib() and "HF_Tokenizer_Zlib" in cr["error"]), cr["error"]
            continue
        assert all(0 <= off and off + size <= p.stat().st_size for _, off, size, _ in cr["result"]["sections"])
        if ok and (n.litertlm_has_zlib() or result.tokenizer is None or result.tokenizer.kind == "sentencepiece"):
            both += 1
            assert cr["result"] == _jsonable(_c_view_of(result)), p
    refused = sum(not ok for ok, _ in python)
    assert 100 < refused < 1000 and both > 50  # the mutants reach both outcomes


def _task_mutant(rng: random.Random, data: bytes) -> bytes:
    """Bytes changed in a bundle's zip records, its METADATA, its tokenizer or the start of its TFLite graph."""
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
    regions = [(i.header_offset, i.header_offset + 30 + len(i.filename)) for i in infos]
    regions.append((len(data) - 22 - sum(46 + len(i.filename) for i in infos), len(data)))
    for i in infos:
        start = i.header_offset + 30 + len(i.filename)
        regions.append((start, start + min(i.file_size, 4000)))
    b = bytearray(data)
    if rng.random() < 0.1:
        return bytes(b[:rng.randrange(len(b))])
    for _ in range(rng.randint(1, 5)):
        lo, hi = rng.choice(regions)
        b[rng.randrange(lo, min(hi, len(b)))] = rng.randrange(256)
    return bytes(b)


def test_mutated_task_bundles_are_read_or_refused_by_name_in_python_and_c(tmp_path):
    from pocketlm.genai.llm_params import parse_metadata

    def python_reader(p):  # what a loader reads of a TFLite .task before any runtime sees it
        from pocketlm.errors import reading

        t = describe_task_model(p)
        with zipfile.ZipFile(p) as zf, reading(p, "entry METADATA"):
            if "METADATA" in zf.namelist():
                parse_metadata(zf.read("METADATA"), f"{p}: entry METADATA")
        return t

    rng = random.Random(7)
    bases = [(FOLDER / n).read_bytes() for n in TASKS]
    paths = []
    for i in range(300):
        p = tmp_path / f"m{i}.task"
        p.write_bytes(_task_mutant(rng, bases[i % 2]))
        paths.append(p)
    python = [_python_read(p, python_reader) for p in paths]
    for p, cr in zip(paths, _c_read_all([("task", p) for p in paths])):
        assert cr["ok"] or str(p) in cr["error"], cr["error"]
    assert 0 < sum(not ok for ok, _ in python) < 300


def test_without_the_schema_packages_reading_says_how_to_get_them(monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_lm_builder", None)
    with pytest.raises(ModelFileError, match=r"pip install pocketlm\[litert\]"):
        read_litertlm(FOLDER / "llama-tiny-int8.litertlm")
    monkeypatch.setitem(sys.modules, "tflite", None)
    with pytest.raises(ModelFileError, match=r"pip install pocketlm\[litert\]"):
        read_tflite(FOLDER / "llama-tiny-int8.tflite")


# -- pocketlm info ------------------------------------------------------------------------------------------------


def info(path) -> str:
    """`pocketlm info PATH` in a process of its own, which must not import LiteRT's runtime."""
    code = ("import sys; from pocketlm.cli import main; rc = main(['info', sys.argv[1]]); "
            "runtime = [m for m in sys.modules if m.split('.')[0] in ('litert_lm', 'ai_edge_litert')]; "
            "assert not runtime, runtime; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _field(out: str, label: str) -> str:
    """The text of one `info` line (and its continuation lines)."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{label:18} "):
            rest = [line[19:]]
            for more in lines[i + 1:]:
                if not more.startswith(" " * 19):
                    break
                rest.append(more[19:])
            return "\n".join(rest)
    raise AssertionError(f"no {label!r} line in:\n{out}")


@pytest.mark.parametrize("name", LITERTLM)
def test_info_on_a_litertlm(name):
    out = info(FOLDER / name)
    sections = _field(out, "sections").splitlines()
    assert [s.split()[1] for s in sections] == [s["type"] for s in RECORDED[name]["sections"]]
    assert "model_type tf_lite_prefill_decode" in sections[3]
    bpe = "bpe" in name
    assert _field(out, "tokenizer").startswith("tokenizer.json (Hugging Face)" if bpe else "SentencePiece model")
    assert _field(out, "start token") == ("'<|im_start|>'" if bpe else "'<s>'")
    assert _field(out, "stop tokens").startswith(f"15: ids [{0 if bpe else 2}], ")
    assert _field(out, "chat template").startswith("Jinja, ")
    assert _field(out, "max tokens") == "256 (max_num_tokens)"
    assert _field(out, "prefill lengths") == "8, 32 tokens per run"
    assert _field(out, "decode") == f"yes, vocabulary {400 if bpe else 500} (decode's logits)"
    kv = _field(out, "KV cache")
    assert "256 positions" in kv and "V [1, 2, 16, 256] [batch, kv_heads, head_dim, cache_length] (transposed)" in kv
    assert _field(out, "weights").startswith("float32 100.0%" if "f32" in name else "int8 per-channel 99.")
    assert _field(out, "parameters") == ("0.13 M" if bpe else "0.14 M")
    assert "composites odml.rms_norm x11" in _field(out, "ops")
    assert _field(out, "runtime").startswith("nothing was loaded")


def test_info_on_the_tflite_and_task_files():
    out = info(FOLDER / "llama-tiny-int8.tflite")
    assert "prefill_8 (prefill): input_pos [8] int32" in _field(out, "signatures")
    assert _field(out, "tokenizer").startswith("none inside")
    out = info(FOLDER / "llama-bpe-int8.task")
    assert _field(out, "entries").splitlines()[0].startswith("TF_LITE_PREFILL_DECODE")
    assert _field(out, "start token") == "'<|im_start|>'" and "bytes-to-unicode" in _field(out, "normalization")
    assert _field(out, "graph").startswith("entry TF_LITE_PREFILL_DECODE: TFLite schema 3")
    out = info(FOLDER / "llama-tiny-int8.task")
    assert _field(out, "prompt template") == "prompt_prefix '[INST] ', prompt_suffix ' [/INST]'"
    out = info(FOLDER / "gpt2-keras-int8.tflite")
    assert _field(out, "whole generation").startswith("serving_default: text in, text out")
    ops = _field(out, "ops")
    assert "select TF ops (Flex" in ops and "TF Text ops (need tensorflow_text too): RegexSplitWithOffsets" in ops
    assert "Flex delegate" in _field(out, "runtime")


def test_info_shows_the_metadata_litert_lm_reads_and_a_template_minijinja_cannot_render(built):
    pytest.importorskip("minijinja")
    out = info(built["rich.litertlm"])
    assert _field(out, "start token") == "ids [1]"
    assert _field(out, "stop tokens") == "3: ids [2, 3], ids [0], '<|im_end|>'"
    assert _field(out, "prompt templates").startswith("user '<|im_start|>user\\n' ... '<|im_end|>\\n'; model ")
    assert _field(out, "sampler") == "TOP_P, top_k 40, top_p 0.9, temperature 0.7, seed 7 (backend UNSPECIFIED)"
    assert _field(out, "model type") == "qwen3"
    check = _field(out, "template check")
    assert check.startswith("FAILS in minijinja") and "unsupported types string and sequence" in check
    assert "renders in minijinja" in _field(info(built["hf.litertlm"]), "template check")


def test_the_template_check_says_when_minijinja_is_missing(monkeypatch):
    from pocketlm.model.litert_info import check_template

    monkeypatch.setitem(sys.modules, "minijinja", None)
    assert check_template(SMOLLM2_TEMPLATE).startswith("skipped: minijinja is not installed")
