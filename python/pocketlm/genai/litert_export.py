"""A local Hugging Face checkpoint -> the .litertlm file a phone runs, made by
litert-torch's own HF exporter (`pocketlm convert --to litertlm`). It only
drives that exporter: it never downloads a checkpoint, never writes a graph
itself, and never imports litert-torch into this process."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .._atomic import atomic_output

# litert-torch 0.10's export_hf defaults (ExportableModuleConfig)
DEFAULT_RECIPE = "dynamic_wi8_afp32"
DEFAULT_PREFILL_LENGTHS = (128,)
DEFAULT_CACHE_LENGTH = 4096
OUTPUT_NAME = "model.litertlm"  # what the exporter names its file in output_dir
INSTALL = "pip install 'pocketlm[litert-convert]' (or: pip install 'pocketlm[litert]' litert-torch)"
NO_QUANTIZATION = "none"

# The exporter runs in a child interpreter: importing litert-torch changes the importing process for good
# (torch settings and pytree registrations, absl logging, torchao's libraries loaded), and litert-torch 0.10
# imports tensorflow.lite.python.schema_py_generated at module level without depending on TensorFlow, so
# where TensorFlow is not installed the child gets, on its PYTHONPATH only, a stand-in package re-exporting
# ai_edge_litert's copy of that schema. PYTHONHASHSEED=0 keeps the order of the stop tokens it writes, so
# one checkpoint and one set of options give the same file (but for its creation time).
_RUN_EXPORT = """
import json, sys
from litert_torch.generative.export_hf import export
a = json.loads(sys.argv[1])
export.export(model=a["model"], output_dir=a["output_dir"], prefill_lengths=a["prefill_lengths"],
              cache_length=a["cache_length"], quantization_recipe=a["quantization_recipe"])
"""
_SCHEMA_SHIM = "from ai_edge_litert.schema_py_generated import *  # noqa: F401,F403\n"
# litert-torch's progress lines, "(00:09) [ DONE] Export > Quantize model (+00:00)", one a line when its rich
# console is wide enough
_PROGRESS = re.compile(r"^\((\d+:\d\d)\) \[\s*(START|DONE|FAIL)\] (.*?)(?: \(\+(\d+:\d\d)\))?\s*$")


class LiteRTExportError(ChildProcessError):
    """litert-torch's exporter failed; the message ends with the tail of its output."""


def exporter_version() -> str | None:
    """The installed litert-torch's version, or None where it is not installed."""
    if importlib.util.find_spec("litert_torch") is None:
        return None
    try:
        return importlib.metadata.version("litert-torch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # a top-level name: found, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def quantization_recipes() -> list[str]:
    """The recipe names litert-torch's exporter takes without calibration data: "none", the recipes of
    ai_edge_quantizer.recipe (its public recipe functions) and litert-torch's own local ones, read from
    their source (importing them would load TensorFlow Lite's runtime). Empty when they cannot be read."""
    names = set()
    quantizer = _package_dir("ai_edge_quantizer")
    if quantizer is not None and (quantizer / "recipe.py").is_file():
        tree = ast.parse((quantizer / "recipe.py").read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    torch_dir = _package_dir("litert_torch")
    lib = torch_dir / "generative/export_hf/core/export_lib.py" if torch_dir else None
    if lib is not None and lib.is_file():
        for node in ast.parse(lib.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                    and any(isinstance(t, ast.Name) and t.id == "_LOCAL_QUANTIZATION_RECIPES" for t in node.targets)):
                names.update(k.value for k in node.value.keys if isinstance(k, ast.Constant))
    # static recipes quantize activations from calibration runs, which this exporter call does not make
    names = {n for n in names if not n.startswith(("_", "static_"))}
    return [NO_QUANTIZATION, *sorted(names)] if names else []


def check_recipe(recipe: str) -> str:
    """The recipe as the exporter takes it: a name of quantization_recipes(), a recipe .json file (made
    absolute), or several of them comma-separated (applied in turn, as litert-torch applies them)."""
    parts = [r.strip() for r in str(recipe).split(",")]
    known = quantization_recipes()
    out = []
    for r in parts:
        if r.endswith(".json"):
            if not Path(r).is_file():
                raise ValueError(f"quantization recipe file {r} does not exist")
            out.append(str(Path(r).resolve()))
        elif not known or r in known:
            out.append(r)
        elif r.lower() in (NO_QUANTIZATION, "null", "false", ""):
            out.append(NO_QUANTIZATION)
        else:
            raise ValueError(f"unknown quantization recipe {r!r}; litert-torch {exporter_version()} takes "
                             f"{', '.join(known)} (or a recipe .json file)")
    return ",".join(out)


def check_checkpoint(checkpoint: str | Path) -> Path:
    """A local checkpoint folder with a config.json; a hub id or a file is refused, as nothing is downloaded."""
    p = Path(checkpoint).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ValueError(f"{p}: no config.json; give the folder of a Hugging Face checkpoint "
                             "(config.json, the weights and the tokenizer)")
        return p.resolve()
    if p.exists():
        raise ValueError(f"{p} is a file; litert-torch's exporter takes a checkpoint folder (config.json, the "
                         "weights and the tokenizer)")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(checkpoint)) and not str(checkpoint).startswith("."):
        raise ValueError(f"{checkpoint} is not a folder here; pocketlm does not download checkpoints: if it is a "
                         f"Hugging Face hub id, download it first (huggingface-cli download {checkpoint} "
                         "--local-dir DIR) and give DIR")
    raise ValueError(f"{p}: no such checkpoint folder")


def check_lengths(prefill_lengths, cache_length: int) -> tuple[list[int], int]:
    lengths = [int(n) for n in prefill_lengths]
    if not lengths:
        raise ValueError("give at least one prefill length")
    if int(cache_length) < 1:
        raise ValueError(f"the cache length must be positive, not {cache_length}")
    bad = [n for n in lengths if n < 1 or n > cache_length]
    if bad:
        raise ValueError(f"prefill lengths must be between 1 and the cache length {cache_length}: {bad}")
    if len(set(lengths)) != len(lengths):
        raise ValueError(f"prefill lengths repeat: {lengths}")
    return lengths, int(cache_length)


def _environment(shim_root: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONUNBUFFERED="1", COLUMNS="100000",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # a local folder only: never the network
    if importlib.util.find_spec("tensorflow") is None:
        for sub in ("tensorflow", "tensorflow/lite", "tensorflow/lite/python"):
            (shim_root / sub).mkdir(parents=True, exist_ok=True)
            (shim_root / sub / "__init__.py").touch()
        (shim_root / "tensorflow/lite/python/schema_py_generated.py").write_text(_SCHEMA_SHIM)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim_root), env.get("PYTHONPATH")]))
    return env


def _show(line: str) -> None:
    m = _PROGRESS.match(line)
    if not m:
        return
    clock, state, stack, took = m.groups()
    steps = [s.strip() for s in stack.split(" > ")]
    # the export's steps and theirs as they start and end (the export's own start is the line above them),
    # one level deeper (the graph's signatures lowered one by one) as they end
    if not (2 <= len(steps) <= 3 if state == "START" else len(steps) <= 4):
        return
    verb = {"START": "start", "DONE": "done ", "FAIL": "FAIL "}[state]
    print(f"  {clock} {verb} {'  ' * (len(steps) - 1)}{steps[-1]}{f' ({took})' if took else ''}",
          file=sys.stderr, flush=True)


def export_litertlm(checkpoint: str | Path, output_dir: str | Path, *, quantize: str = DEFAULT_RECIPE,
                    prefill_lengths=DEFAULT_PREFILL_LENGTHS, cache_length: int = DEFAULT_CACHE_LENGTH,
                    progress: bool = True) -> Path:
    """Exports a local HF checkpoint folder with litert-torch's HF exporter
    (litert_torch.generative.export_hf.export) to output_dir/model.litertlm
    and returns that path. quantize: litert-torch's quantization_recipe
    (quantization_recipes(); "none" keeps float32 weights); prefill_lengths:
    one prefill_N signature each; cache_length: the KV cache's positions,
    fixed in the graph (the most maxTokens a runtime can use). The file
    appears whole or not at all: the exporter writes into a temporary folder
    in output_dir, and the file is renamed into place when it succeeded.
    progress: print the exporter's stages to stderr as they end (its whole
    output is in the error when it fails)."""
    ckpt = check_checkpoint(checkpoint)
    lengths, cache = check_lengths(prefill_lengths, cache_length)
    version = exporter_version()
    if version is None:
        raise ValueError(f"converting to .litertlm needs litert-torch's exporter: {INSTALL}")
    recipe = check_recipe(quantize)
    out_dir = Path(output_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / OUTPUT_NAME
    work = Path(tempfile.mkdtemp(prefix=f".{OUTPUT_NAME}.", suffix=".export", dir=out_dir))
    try:
        args = dict(model=str(ckpt), output_dir=str(work / "out"), prefill_lengths=lengths, cache_length=cache,
                    quantization_recipe=recipe)
        if progress:
            print(f"exporting {ckpt} with litert-torch {version}: quantization {recipe}, prefill lengths "
                  f"{', '.join(map(str, lengths))}, KV cache {cache}", file=sys.stderr, flush=True)
        log = work / "export.log"
        with open(log, "w", encoding="utf-8", errors="replace") as f:
            proc = subprocess.Popen([sys.executable, "-c", _RUN_EXPORT, json.dumps(args)], env=_environment(work),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, errors="replace")
            try:
                for line in proc.stdout:
                    f.write(line)
                    if progress:
                        _show(line)
                rc = proc.wait()
            except BaseException:  # Ctrl-C or any failure here: the child goes too
                proc.kill()
                proc.wait()
                raise
        produced = work / "out" / OUTPUT_NAME
        if rc != 0 or not produced.is_file():
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
            why = f"exit status {rc}" if rc else f"no {OUTPUT_NAME} written"
            raise LiteRTExportError(f"litert-torch's exporter failed on {ckpt} ({why}); its output ends:\n{tail}")
        with atomic_output(target) as tmp:
            os.replace(produced, tmp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


__all__ = ["DEFAULT_CACHE_LENGTH", "DEFAULT_PREFILL_LENGTHS", "DEFAULT_RECIPE", "LiteRTExportError",
           "check_recipe", "export_litertlm", "exporter_version", "quantization_recipes"]
