"""libpocketlm's layering (native/src/README.md): every #include of a source
file names a header of its own layer or of a layer below it, every source
file is in CMake's lists, and no file lies outside a layer folder."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "native" / "src"
# layer -> the layers its files may include (its own included)
ALLOWED = {
    "util": {"util"},
    "kernels/arch": {"kernels/arch", "kernels", "util"},
    "kernels": {"kernels", "util"},
    "model": {"model", "kernels", "util"},
    "text": {"text", "util"},
    "litert": {"litert", "model", "kernels", "util"},
    "engine": {"engine", "litert", "model", "kernels", "util"},
    "api": {"api", "engine", "litert", "text", "model", "kernels", "util"},
}
PUBLIC = {"pocketlm.h": set(ALLOWED), "llm_inference_engine.h": {"api"}}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path: Path) -> str:
    rel = path.relative_to(SRC).parent.as_posix()
    assert rel in ALLOWED, f"{path.relative_to(SRC)} lies outside the layer folders {sorted(ALLOWED)}"
    return rel


def header_layer(name: str) -> str:
    return Path(name).parent.as_posix()


def sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*") if p.suffix in (".c", ".h"))


def test_every_include_names_its_own_layer_or_one_below():
    bad = []
    for path in sources():
        own = layer_of(path)
        for name in INCLUDE.findall(path.read_text()):
            if name in PUBLIC:
                ok = own in PUBLIC[name]
            else:
                ok = (SRC / name).is_file() and header_layer(name) in ALLOWED[own]
            if not ok:
                bad.append(f"{path.relative_to(SRC)} includes {name}")
    assert not bad, "includes that break the layering:\n" + "\n".join(bad)


def test_the_checker_sees_a_violation():
    own = "kernels"
    assert header_layer("engine/engine.h") not in ALLOWED[own]
    assert header_layer("util/util.h") in ALLOWED[own]


def test_cmake_lists_every_source_file_by_its_folder():
    cmake = (SRC.parent / "CMakeLists.txt").read_text()
    listed = set(re.findall(r"\bsrc/([\w/]+\.c)\b", cmake))
    on_disk = {p.relative_to(SRC).as_posix() for p in sources() if p.suffix == ".c"}
    assert listed == on_disk
