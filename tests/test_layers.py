"""The package's layers (DESIGN.md): no module imports a module of a higher
layer, at the top of the file or inside a function, and the device simulation
imports neither the engines nor the APIs that consult it. Imports are read
with ast, so nothing is imported to check them."""

import ast
from pathlib import Path

import pytest

import pocketlm

PACKAGE = Path(pocketlm.__file__).parent

# top to bottom; a module may import its own layer and the ones below it
LAYERS = [
    ("APIs", ("pocketlm", "pocketlm.__main__", "pocketlm.cli", "pocketlm.port_check", "pocketlm.builtin",
              "pocketlm.tasks", "pocketlm.litertlm",
              # mediapipe.tasks.python.genai.converter's mirror: a tool over the model files, which the CLI calls
              "pocketlm.genai.converter")),
    ("engine", ("pocketlm.engine",)),
    # consulted by the engines and the APIs
    ("device", ("pocketlm.device",)),
    ("model", ("pocketlm.model", "pocketlm.tokenizer", "pocketlm.sampling", "pocketlm.genai",
               # the .task format that model/loader.py reads (task_bundle.c is in C's model layer too)
               "pocketlm.genai.bundler", "pocketlm.genai.llm_params")),
    ("kernels", ("pocketlm.kernels",)),
    # what every layer shares: errors, atomic writes, the quant-type table (pocketlm.h's plm_type)
    ("shared", ("pocketlm.errors", "pocketlm._atomic", "pocketlm.model.quant")),
]

# imports that cross a layer upwards on purpose, each with why
ALLOWED = {
    ("pocketlm.kernels.native", "pocketlm.model.gguf_reader"):
        "the one cffi wrapper of libpocketlm covers its GGUF reader too: errors and value types are the Python "
        "reader's",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> set[str]:
    """The pocketlm modules name imports, anywhere in its file."""
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from pkg import mod` imports the submodule mod; `from pkg import name`, pkg itself
            found.update(f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names)
    return {m for m in found if m == "pocketlm" or m.startswith("pocketlm.")}


def _layer(module: str) -> int | None:
    best, where = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            matches = module == p or (p != "pocketlm" and module.startswith(p + "."))
            if matches and len(p) > best:
                best, where = len(p), i
    return where


EDGES = sorted((m, t) for m in MODULES for t in _imports(m) if t != m)


def test_the_import_reader_sees_relative_and_function_level_imports():
    assert ("pocketlm.tasks.llm_inference", "pocketlm.engine.base") in EDGES
    assert ("pocketlm.engine.base", "pocketlm.engine.native") in EDGES  # inside Engine.__init__
    assert ("pocketlm.model.forward", "pocketlm.kernels") in EDGES  # from .. import kernels


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_has_a_layer(module):
    assert _layer(module) is not None, f"{module} is in no layer of tests/test_layers.py's LAYERS"


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, target in EDGES:
        lo, hi = _layer(module), _layer(target)
        if lo is None or hi is None or (module, target) in ALLOWED:
            continue
        if hi < lo:
            upward.append(f"{module} ({LAYERS[lo][0]}) imports {target} ({LAYERS[hi][0]})")
    assert not upward, "\n".join(upward)


def test_device_imports_neither_the_engines_nor_the_apis():
    below = {m for m in MODULES if _layer(m) > _layer("pocketlm.device")}
    wrong = [(m, t) for m, t in EDGES if m.startswith("pocketlm.device") and t not in below
             and not t.startswith("pocketlm.device")]
    assert not wrong


def test_each_engine_module_imports_only_the_shared_interface():
    """engine/base.py is the interface; python.py and native.py (and the engines
    to come) build on it and never on one another. The one exception: the
    LiteRT engine's graphs run inside the C engine's sessions (libpocketlm's
    LiteRT executor), so litert.py opens them as native models."""
    shared = {"pocketlm.engine", "pocketlm.engine.base", "pocketlm.engine.templates"}
    allowed = {("pocketlm.engine.litert", "pocketlm.engine.native")}
    wrong = [(m, t) for m, t in EDGES if m.startswith("pocketlm.engine.") and m not in shared
             and t.startswith("pocketlm.engine") and t not in shared and (m, t) not in allowed]
    assert not wrong
