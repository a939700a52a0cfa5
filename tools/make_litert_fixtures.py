#!/usr/bin/env python3
"""Writes the files of tests/fixtures/litert/ with the real converters.

    python tools/make_litert_fixtures.py [--mediapipe-venv DIR] [--tf-venv DIR] [NAME ...]

tests/fixtures/litert.py lists the files and builds their sources. With the
current interpreter, this script writes the tiny checkpoints, exports them
with litert-torch's HF exporter (a subprocess, PYTHONHASHSEED=0 so the stop
tokens keep their order; litert-torch 0.10 imports
tensorflow.lite.python.schema_py_generated without depending on TensorFlow,
so where TensorFlow is not installed the subprocess gets a stand-in package
re-exporting ai_edge_litert's copy of that schema), and cuts the .tflite and
tokenizer out of the .litertlm sections. The .task bundles are made by
MediaPipe 0.10.21's bundler in a virtual environment (numpy<2, as
tools/make_mediapipe_fixtures.py makes it), the Keras GPT-2 by TensorFlow,
TensorFlow Text and keras-hub in another (they would replace the main
environment's numpy and protobuf). NAME picks some files (default all;
the files a NAME is cut from or bundles are made first when missing).

Last, fixtures.json is rewritten for every file present: sizes, the
.litertlm sections and metadata, each model's signatures, and what LiteRT
itself answers greedily (litert_lm's Engine on CPU; ai_edge_litert's
Interpreter driving prefill/decode; TensorFlow Lite with the Flex delegate for
the Keras GPT-2).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from make_mediapipe_fixtures import DEPS as MEDIAPIPE_DEPS  # noqa: E402
from make_mediapipe_fixtures import MEDIAPIPE  # noqa: E402

from tests.fixtures import litert as fx  # noqa: E402

# TensorFlow 2.20+ wheels no longer link the Flex delegate into
# tf.lite.Interpreter, so the select-TF-ops model could not be run there
TF_DEPS = ["tensorflow-cpu==2.19.1", "tensorflow-text==2.19.0", "keras-hub==0.22.2"]

LITERTLM = {  # file -> (checkpoint, quantization recipe)
    "llama-tiny-int8.litertlm": ("sp", "dynamic_wi8_afp32"),
    "llama-tiny-f32.litertlm": ("sp", "none"),
    "llama-bpe-int8.litertlm": ("bpe", "dynamic_wi8_afp32"),
}
CUT = {"llama-tiny-int8.tflite": "llama-tiny-int8.litertlm"}  # .tflite -> the .litertlm it is cut from
TOKENIZER = "llama-tiny.tokenizer.model"  # written beside the .tflite
TASKS = {"llama-tiny-int8.task": "llama-tiny-int8.litertlm", "llama-bpe-int8.task": "llama-bpe-int8.litertlm"}
GPT2 = "gpt2-keras-int8.tflite"
NAMES = [*LITERTLM, *CUT, *TASKS, GPT2]

SCHEMA_SHIM = "from ai_edge_litert.schema_py_generated import *  # noqa: F401,F403\n"

RUN_EXPORT = """
import json, sys
from litert_torch.generative.export_hf import export
a = json.loads(sys.argv[1])
export.export(model=a["model"], output_dir=a["out"], prefill_lengths=a["prefill"], cache_length=a["cache"],
              quantization_recipe=a["recipe"])
"""

RUN_BUNDLER = """
from mediapipe.tasks.python.genai import bundler
bundler.create_bundle(bundler.BundleConfig(**{config!r}))
"""

# keras-hub's GPT-2 -> one serving_default signature (string prompt in, text
# out), as TensorFlow Lite's GPT-2 Android example converts it. Keras 3 reads
# the weights inside generate()'s while loop from resource variables that
# TFLiteConverter leaves unfrozen (the Flex delegate then finds no such
# variable), so the trace maps every trainable variable to a constant of its
# value through keras.StatelessScope: the graph is keras-hub's own
# generate_step, with the weights as constants. keras-hub's
# generate_postprocess calls convert_to_numpy, which a graph cannot, so the
# padding and end tokens are dropped with ragged ops before its tokenizer's
# detokenize.
RUN_GPT2 = r"""
import json, os, sys, tempfile
os.environ["KERAS_BACKEND"] = "tensorflow"
import numpy as np, tensorflow as tf, keras, keras_hub
import tensorflow_text as tf_text  # noqa: F401  (registers the TF Text ops)

a = json.loads(sys.argv[1])
cfg = a["config"]
model = json.load(open(a["tokenizer_json"], encoding="utf-8"))
special = {t["content"] for t in model["added_tokens"]}
pieces = sorted((i, t) for t, i in model["model"]["vocab"].items() if t not in special)
vocab = {t: n for n, (_, t) in enumerate(pieces)}
vocab["<|endoftext|>"] = len(vocab)
merges = [m if isinstance(m, str) else " ".join(m) for m in model["model"]["merges"]]
keras.utils.set_random_seed(cfg["seed"])
tok = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=merges)
L = cfg["sequence_length"]
pre = keras_hub.models.GPT2CausalLMPreprocessor(tok, sequence_length=L, add_end_token=True)
bb = keras_hub.models.GPT2Backbone(vocabulary_size=len(vocab), num_layers=cfg["num_layers"],
                                   num_heads=cfg["num_heads"], hidden_dim=cfg["hidden_dim"],
                                   intermediate_dim=cfg["intermediate_dim"],
                                   max_sequence_length=cfg["max_sequence_length"])
rng = np.random.default_rng(cfg["seed"])
for v in bb.trainable_variables:
    n, s = v.path, tuple(v.shape)
    if n.endswith("gamma"):
        w = 1 + 0.1 * rng.standard_normal(s)
    elif n.endswith("beta") or n.endswith("bias"):
        w = 0.1 * rng.standard_normal(s)
    elif "token_embedding" in n:
        w = rng.standard_normal(s)
        w[[vocab[t] for t in a["silent"]]] = 0.0
    elif "position_embedding" in n:
        w = 0.3 * rng.standard_normal(s)
    else:  # EinsumDense query/key/value kernels are (hidden, heads, head_dim)
        fan_in = s[0] if len(s) == 3 and "attention_output" not in n else int(np.prod(s[:-1]))
        w = rng.standard_normal(s) / np.sqrt(fan_in)
    v.assign(w.astype("float32"))
lm = keras_hub.models.GPT2CausalLM(backbone=bb, preprocessor=pre)
lm.compile(sampler="greedy")
lm.jit_compile = False
end = tok.end_token_id
weights = [v.numpy() for v in bb.trainable_variables]


@tf.function(input_signature=[tf.TensorSpec([], tf.string, name="prompt")])
def generate(prompt):
    x = pre.generate_preprocess(tf.expand_dims(prompt, 0), sequence_length=L)
    consts = [tf.constant(w) for w in weights]
    with keras.StatelessScope(state_mapping=list(zip(bb.trainable_variables, consts))):
        x = lm.generate_step(x, stop_token_ids=(end,))
    keep = tf.logical_and(tf.cast(x["padding_mask"], tf.bool), tf.not_equal(x["token_ids"], end))
    return tok.detokenize(tf.ragged.boolean_mask(x["token_ids"], keep))[0]


module = tf.Module()
module.lm = lm
module.generate = generate
saved = tempfile.mkdtemp()
tf.saved_model.save(module, saved, signatures={"serving_default": generate.get_concrete_function()})
conv = tf.lite.TFLiteConverter.from_saved_model(saved)
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
conv.allow_custom_ops = True
conv.target_spec.experimental_select_user_tf_ops = ["UnsortedSegmentJoin", "UpperBound"]
conv._experimental_guarantee_all_funcs_one_use = True
conv.optimizations = [tf.lite.Optimize.DEFAULT]
flat = conv.convert()
open(a["out"], "wb").write(flat)

it = tf.lite.Interpreter(model_content=flat)
runner = it.get_signature_runner("serving_default")
def details(d):
    return {k: dict(tensor=v["name"], shape=v["shape"].tolist(), dtype=np.dtype(v["dtype"]).name)
            for k, v in d.items()}
answers = []
for p in cfg["prompts"]:
    out = runner(prompt=np.array(p.encode("utf-8")))["output_0"]
    answers.append(dict(prompt=p, text=out.item().decode("utf-8"),
                        keras_float=lm.generate(p, max_length=L)))
json.dump(dict(tensorflow=tf.__version__, keras=keras.__version__, keras_hub=keras_hub.__version__,
               signatures={"serving_default": dict(inputs=details(runner.get_input_details()),
                                                   outputs=details(runner.get_output_details()))},
               answers=answers), open(a["answers"], "w", encoding="utf-8"), ensure_ascii=False, indent=1)
"""


class Run:
    """One run's temporary folder, requests and results."""

    def __init__(self, tmp: Path, asked: list[str], mediapipe_venv: Path | None, tf_venv: Path | None):
        self.tmp, self.asked, self.made = tmp, asked, set()
        self.mediapipe_venv, self.tf_venv = mediapipe_venv, tf_venv
        self.gpt2_answers = tmp / "gpt2-answers.json"


def venv_python(venv: Path | None, prefix: str, deps: list[list[str]]) -> Path:
    venv = venv or Path(tempfile.mkdtemp(prefix=prefix))
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        for group in deps:
            subprocess.run([str(py), "-m", "pip", "install", "-q", *group], check=True)
    return py


def checkpoint(kind: str, run: Run) -> Path:
    folder = run.tmp / f"{kind}-checkpoint"
    if not folder.exists():
        (fx.sp_checkpoint if kind == "sp" else fx.bpe_checkpoint)(folder)
    return folder


def export_litertlm(name: str, run: Run) -> None:
    kind, recipe = LITERTLM[name]
    tmp = run.tmp
    ckpt = checkpoint(kind, run)
    out = Path(tempfile.mkdtemp(dir=tmp))
    env = dict(os.environ, PYTHONHASHSEED="0")
    if importlib.util.find_spec("tensorflow") is None:
        shim = tmp / "tensorflow-schema-shim"
        for sub in ("tensorflow", "tensorflow/lite", "tensorflow/lite/python"):
            (shim / sub).mkdir(parents=True, exist_ok=True)
            (shim / sub / "__init__.py").touch()
        (shim / "tensorflow/lite/python/schema_py_generated.py").write_text(SCHEMA_SHIM)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), env.get("PYTHONPATH")]))
    args = dict(model=str(ckpt), out=str(out), prefill=list(fx.PREFILL_LENGTHS), cache=fx.CACHE_LENGTH, recipe=recipe)
    log = tmp / f"{name}.log"
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, "-c", RUN_EXPORT, json.dumps(args)], env=env, stdout=f, stderr=f)
    if r.returncode:
        sys.exit(f"litert-torch's export of {name} failed:\n" + log.read_text()[-4000:])
    shutil.move(out / "model.litertlm", fx.FOLDER / name)


def sections(path: Path) -> list[dict]:
    """The sections of a .litertlm file as its header lists them."""
    import struct

    from litert_lm_builder import litertlm_header_schema_py_generated as schema
    from litert_lm_builder import litertlm_peek

    data = path.read_bytes()
    end = struct.unpack_from("<Q", data, 24)[0]
    meta = schema.LiteRTLMMetaData.GetRootAs(data[32:end], 0)
    names = {v: k for k, v in vars(schema.AnySectionDataType).items() if not k.startswith("_")}
    out = []
    smeta = meta.SectionMetadata()
    for i in range(smeta.ObjectsLength()):
        obj = smeta.Objects(i)
        items = {}
        for j in range(obj.ItemsLength()):
            kv = litertlm_peek.kvp_to_dict(obj.Items(j))
            items[kv["key"]] = kv["value"]
        out.append(dict(type=names[obj.DataType()], begin=obj.BeginOffset(), end=obj.EndOffset(), items=items))
    return out


def section_bytes(path: Path, kind: str, model_type: str | None = None) -> bytes:
    data = path.read_bytes()
    for s in sections(path):
        if s["type"] == kind and (model_type is None or s["items"].get("model_type") == model_type):
            return data[s["begin"]:s["end"]]
    raise ValueError(f"{path.name} has no {kind} section")


def cut_tflite(name: str, run: Run) -> None:
    src = fx.FOLDER / CUT[name]
    ensure(CUT[name], run)
    (fx.FOLDER / name).write_bytes(section_bytes(src, "TFLiteModel", "tf_lite_prefill_decode"))
    (fx.FOLDER / TOKENIZER).write_bytes(section_bytes(src, "SP_Tokenizer"))


def bundle(name: str, run: Run) -> None:
    src = fx.FOLDER / TASKS[name]
    ensure(TASKS[name], run)
    tmp = run.tmp
    model = tmp / f"{name}.tflite"
    model.write_bytes(section_bytes(src, "TFLiteModel", "tf_lite_prefill_decode"))
    if name.startswith("llama-tiny"):
        tokenizer, settings = tmp / f"{name}.model", fx.SP_TASK
        tokenizer.write_bytes(section_bytes(src, "SP_Tokenizer"))
    else:
        tokenizer, settings = fx.bpe_sentencepiece(checkpoint("bpe", run), tmp / f"{name}.model"), fx.BPE_TASK
    py = venv_python(run.mediapipe_venv, "mediapipe-venv-", [MEDIAPIPE_DEPS, ["--no-deps", MEDIAPIPE]])
    config = dict(tflite_model=str(model), tokenizer_model=str(tokenizer), output_filename=str(fx.FOLDER / name),
                  **settings)
    subprocess.run([str(py), "-c", RUN_BUNDLER.format(config=config)], check=True)


def keras_gpt2(run: Run) -> None:
    folder = checkpoint("bpe", run)
    py = venv_python(run.tf_venv, "tf-venv-", [TF_DEPS])
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    broken = set(fx.bpe_broken_ids(folder))
    args = dict(config=fx.GPT2_KERAS, tokenizer_json=str(folder / "tokenizer.json"), out=str(fx.FOLDER / GPT2),
                answers=str(run.gpt2_answers), silent=[t for t, i in vocab.items() if i in broken])
    log = run.tmp / "gpt2.log"
    with open(log, "w") as f:
        r = subprocess.run([str(py), "-c", RUN_GPT2, json.dumps(args)], stdout=f, stderr=f,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""))
    if r.returncode:
        sys.exit("the Keras GPT-2 conversion failed:\n" + log.read_text()[-4000:])


def ensure(name: str, run: Run) -> None:
    """Makes name unless made in this run, or (only the source of an asked file) present."""
    if name in run.made or (name not in run.asked and (fx.FOLDER / name).exists()):
        return
    {**dict.fromkeys(LITERTLM, export_litertlm), **dict.fromkeys(CUT, cut_tflite), **dict.fromkeys(TASKS, bundle),
     GPT2: lambda _, r: keras_gpt2(r)}[name](name, run)
    run.made.add(name)


# --- what LiteRT answers ---------------------------------------------------


def signatures(model: bytes) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    out = {}
    for key in it.get_signature_list():
        r = it.get_signature_runner(key)
        out[key] = {side: {k: dict(shape=d["shape"].tolist(), dtype=d["dtype"].__name__)
                           for k, d in sorted(details.items())}
                    for side, details in (("inputs", r.get_input_details()), ("outputs", r.get_output_details()))}
    return out


def kv_cache_layout(sigs: dict) -> dict:
    """What the signatures say about the KV cache."""
    decode = sigs["decode"]["inputs"]
    k, v = decode["kv_cache_k_0"], decode["kv_cache_v_0"]
    names = sorted(n for n in decode if n.startswith("kv_cache_"))
    return dict(layers=len(names) // 2, names=["kv_cache_k_{i}", "kv_cache_v_{i}"], dtype=k["dtype"],
                k_shape=k["shape"], v_shape=v["shape"], k_layout="[batch, kv_heads, cache_length, head_dim]",
                v_layout="[batch, kv_heads, head_dim, cache_length]", cache_length=k["shape"][2],
                inputs_and_outputs_of_every_signature=all(
                    set(names) <= set(s["inputs"]) and set(names) <= set(s["outputs"]) for s in sigs.values()),
                mask="additive float32 [1, 1, T, cache_length]: 0 where attended, very negative elsewhere",
                logits="decode only, float32 [1, 1, vocab]; prefill returns only the caches")


def interpreter_greedy(model: bytes, ids: list[int], stop: set[int], n: int) -> list[int]:
    """Greedy tokens of a plain loop over the model's signatures, as
    LiteRT-LM drives them: the prompt but its last token through prefill
    (prefill_N chunks, the largest N that fits, the last chunk padded),
    then decode from the last prompt token; caches fed back each call."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=1)
    lengths = sorted(int(k.split("_")[1]) for k in it.get_signature_list() if k.startswith("prefill_"))
    decode = it.get_signature_runner("decode")
    cache = {k: np.zeros(d["shape"], d["dtype"]) for k, d in decode.get_input_details().items()
             if k.startswith("kv_cache_")}
    C = decode.get_input_details()["mask"]["shape"][-1]
    neg = np.finfo(np.float32).min

    def mask(pos):
        m = np.full((1, 1, len(pos), C), neg, np.float32)
        for i, p in enumerate(pos):
            m[0, 0, i, :p + 1] = 0
        return m

    done, pre = 0, ids[:-1]
    while done < len(pre):
        L = next((x for x in reversed(lengths) if x <= len(pre) - done), lengths[0])
        chunk = pre[done:done + L]
        tokens = np.zeros((1, L), np.int32)
        tokens[0, :len(chunk)] = chunk
        pos = np.arange(done, done + L, dtype=np.int32)
        out = it.get_signature_runner(f"prefill_{L}")(tokens=tokens, input_pos=pos, mask=mask(pos), **cache)
        cache = {k: out[k] for k in cache}
        done += len(chunk)
    pos, tok, got = len(ids) - 1, ids[-1], []
    while len(got) < n:
        out = decode(tokens=np.array([[tok]], np.int32), input_pos=np.array([pos], np.int32), mask=mask([pos]),
                     **cache)
        cache = {k: out[k] for k in cache}
        tok = int(np.argmax(out["logits"][0, -1]))
        if tok in stop:
            break
        got.append(tok)
        pos += 1
    return got


def litert_lm_answers(path: Path, model: bytes, run: Run, affixes: dict | None) -> dict:
    """litert_lm's greedy answers for fx.PROMPTS: a Session without and with
    the file's prompt template, and a Conversation (its chat template); each
    checked against the interpreter loop on the tokens LiteRT-LM prefills:
    [start] + tokens(prompt) for the plain Session, [start] + tokens(the
    rendered message) for the Conversation, and for a .task's templated
    Session [start] + tokens(prefix + prompt) + tokens(suffix), the suffix
    tokenized on its own (affixes: the bundle's prompt_prefix/suffix)."""
    import litert_lm

    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
    (run.tmp / "litert-lm-cache").mkdir(exist_ok=True)
    engine = litert_lm.Engine(str(path), backend=litert_lm.Backend.CPU(thread_count=1),
                              cache_dir=str(run.tmp / "litert-lm-cache"))
    greedy = litert_lm.SamplerConfig(top_k=1)
    out = dict(bos_token_id=engine.bos_token_id, eos_token_ids=engine.eos_token_ids, prompts=[])
    stop = {ids[0] for ids in out["eos_token_ids"] if len(ids) == 1}
    start = [engine.bos_token_id] if engine.bos_token_id is not None else []

    def check(entry, key, ids):
        got = interpreter_greedy(model, ids, stop, fx.MAX_OUTPUT_TOKENS)
        entry[f"{key}_matches_interpreter"] = engine.detokenize(got) == entry[key]
        return got

    for prompt in fx.PROMPTS:
        ids = start + engine.tokenize(prompt)
        entry = dict(prompt=prompt, prompt_ids=ids)
        for key, template in (("session", False), ("session_templated", True)):
            s = engine.create_session(apply_prompt_template=template, sampler_config=greedy,
                                      max_output_tokens=fx.MAX_OUTPUT_TOKENS)
            s.run_prefill([prompt])
            entry[key] = s.run_decode().texts[0]
            s.close()
        conv = engine.create_conversation(sampler_config=greedy, max_output_tokens=fx.MAX_OUTPUT_TOKENS)
        entry["conversation_prompt"] = conv.render_message_to_string(prompt)
        entry["conversation"] = "".join(c["text"] for c in conv.send_message(prompt).to_json()["content"]
                                        if c.get("type") == "text")
        conv.close()
        got = check(entry, "session", ids)
        entry["interpreter_tokens"] = got
        entry["interpreter_text"] = engine.detokenize(got)
        if affixes:
            entry["session_templated_ids"] = (start + engine.tokenize(affixes["prompt_prefix"] + prompt)
                                              + engine.tokenize(affixes["prompt_suffix"]))
            check(entry, "session_templated", entry["session_templated_ids"])
        entry["conversation_ids"] = start + engine.tokenize(entry["conversation_prompt"])
        check(entry, "conversation", entry["conversation_ids"])
        out["prompts"].append(entry)
    engine.close()
    return out


def describe(name: str, run: Run, before: dict) -> dict:
    path = fx.FOLDER / name
    data = path.read_bytes()
    d = dict(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    if name.endswith(".litertlm"):
        from google.protobuf import json_format
        from litert_lm_builder.runtime.proto import executor_metadata_pb2, llm_metadata_pb2

        d["sections"] = sections(path)
        d["llm_metadata"] = json_format.MessageToDict(llm_metadata_pb2.LlmMetadata.FromString(
            section_bytes(path, "LlmMetadataProto")))
        d["executor_metadata"] = json_format.MessageToDict(executor_metadata_pb2.ExecutorMetadata.FromString(
            section_bytes(path, "ExecutorMetadataProto")))
        model = section_bytes(path, "TFLiteModel", "tf_lite_prefill_decode")
        d["source"] = dict(checkpoint=LITERTLM[name][0], quantization_recipe=LITERTLM[name][1],
                           prefill_lengths=list(fx.PREFILL_LENGTHS), cache_length=fx.CACHE_LENGTH)
    elif name.endswith(".task"):
        with zipfile.ZipFile(path) as z:
            d["entries"] = {i.filename: i.file_size for i in z.infolist()}
            model = z.read("TF_LITE_PREFILL_DECODE")
        d["source"] = dict(tflite_model=f"the TFLiteModel section of {TASKS[name]}",
                           bundler=(fx.SP_TASK if name.startswith("llama-tiny") else fx.BPE_TASK))
    elif name == GPT2:  # answered in TensorFlow's environment when made; kept from the last run otherwise
        if run.gpt2_answers.exists():
            d.update(json.loads(run.gpt2_answers.read_text(encoding="utf-8")))
        else:
            d.update({k: v for k, v in before.get(name, {}).items() if k not in d})
        d["source"] = fx.GPT2_KERAS
        return d
    else:
        model = data
        d["source"] = dict(cut_from=CUT[name], tokenizer=TOKENIZER)
    d["signatures"] = signatures(model)
    d["kv_cache"] = kv_cache_layout(d["signatures"])
    if name.endswith((".litertlm", ".task")):
        d["litert_lm"] = litert_lm_answers(path, model, run, d["source"].get("bundler"))
    else:  # litert_lm opens .litertlm and .task files only: the tokens of the loop, with its tokenizer
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(fx.FOLDER / TOKENIZER))
        d["interpreter"] = []
        for prompt in fx.PROMPTS:
            ids = [sp.bos_id(), *sp.encode(prompt)]
            got = interpreter_greedy(model, ids, {sp.eos_id()}, fx.MAX_OUTPUT_TOKENS)
            d["interpreter"].append(dict(prompt=prompt, prompt_ids=ids, tokens=got, text=sp.decode(got)))
    return d


def record(run: Run) -> None:
    versions = {p: importlib.metadata.version(p) for p in ("litert-lm-api", "litert-lm-builder", "litert-torch",
                                                             "ai-edge-litert", "transformers", "torch")}
    before = fx.recorded()["files"] if fx.FIXTURES_JSON.exists() else {}
    files = {}
    for name in NAMES:
        if (fx.FOLDER / name).exists():
            files[name] = describe(name, run, before)
    if (fx.FOLDER / TOKENIZER).exists():
        data = (fx.FOLDER / TOKENIZER).read_bytes()
        files[TOKENIZER] = dict(bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                source=f"the SP_Tokenizer section of {CUT['llama-tiny-int8.tflite']}")
    doc = dict(
        about="made by tools/make_litert_fixtures.py; sources in tests/fixtures/litert.py",
        versions={**versions, "mediapipe (bundler)": MEDIAPIPE.split("==")[1]},
        greedy=dict(sampler="litert_lm.SamplerConfig(top_k=1): the C API's TOP_P sampler with k=1, p=0.95, "
                            "temperature 1, seed 0 (its GREEDY and TOP_K types answer UNIMPLEMENTED on CPU)",
                    backend="litert_lm.Backend.CPU(thread_count=1)",
                    max_output_tokens=fx.MAX_OUTPUT_TOKENS),
        files=files)
    fx.FIXTURES_JSON.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mediapipe-venv", type=Path, default=None, help="MediaPipe's virtual environment (made if missing)")
    ap.add_argument("--tf-venv", type=Path, default=None, help="TensorFlow's virtual environment to make or reuse")
    ap.add_argument("--record-only", action="store_true", help="only rewrite fixtures.json")
    ap.add_argument("names", nargs="*", choices=[[], *NAMES], help="files to write (default: all)")
    args = ap.parse_args()
    fx.FOLDER.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="litert-fixtures-") as tmp:
        run = Run(Path(tmp), [] if args.record_only else (args.names or NAMES), args.mediapipe_venv, args.tf_venv)
        for name in run.asked:
            ensure(name, run)
        record(run)
    total = 0
    for p in sorted(fx.FOLDER.iterdir()):
        total += p.stat().st_size
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes{' (new)' if p.name in run.made else ''}")
    print(f"{total} bytes in all")


if __name__ == "__main__":
    main()
