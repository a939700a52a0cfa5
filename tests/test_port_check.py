"""pocketlm port-check's parts that run on any machine: the NumPy reference
cases and the C program that checks the kernels against them (here on x86,
under qemu by port-check), and the ELF report's checks, which must fail on a
library that is not an arm64 one with 16 KiB pages."""

import contextlib
import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pocketlm import port_check as pc
from pocketlm.cli import main

native = pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
ROOT = Path(__file__).resolve().parents[1]
CC = shutil.which("cc") or shutil.which("gcc")


def _config(*flags) -> list[str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["config", *flags]) == 0
    return buf.getvalue().split()


@pytest.fixture(scope="module")
def test_reference(tmp_path_factory):
    if CC is None:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("ref") / "test_reference"
    subprocess.run([CC, "-O2", str(ROOT / "native" / "tests" / "test_reference.c"), f"-I{ROOT / 'native' / 'tests'}",
                    "-o", str(exe), *_config("--cflags", "--libs"), "-lm"], check=True)
    return exe


@pytest.mark.parametrize("level", ["2", "0"], ids=["simd", "scalar"])
def test_the_kernels_match_numpys_reference_cases(test_reference, tmp_path, level):
    cases = tmp_path / "cases.bin"
    n = pc.write_reference_cases(cases)
    out = subprocess.run([str(test_reference), str(cases)], capture_output=True, text=True,
                         env={"POCKETLM_SIMD": level})
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"ok: {n} cases" in out.stdout and f"SIMD level {level}" in out.stdout


def test_a_wrong_reference_output_fails(test_reference, tmp_path):
    cases = tmp_path / "cases.bin"
    pc.write_reference_cases(cases)
    data = bytearray(cases.read_bytes())
    data[-4:] = struct.pack("<f", 1e30)  # the last expected value (silu_mul's) becomes absurd
    cases.write_bytes(bytes(data))
    out = subprocess.run([str(test_reference), str(cases)], capture_output=True, text=True)
    assert out.returncode != 0 and "silu_mul" in out.stderr
    cases.write_bytes(bytes(data[:100]))
    out = subprocess.run([str(test_reference), str(cases)], capture_output=True, text=True)
    assert out.returncode != 0 and "truncated or malformed" in out.stderr


def test_the_library_exports_exactly_its_headers():
    lib = Path(native.LIBRARY)
    defined, undefined = pc.dynamic_symbols(lib, shutil.which("nm") or pytest.skip("no nm"))
    declared = pc.header_functions(Path(native.header_path()).parent)
    assert declared and declared <= defined, sorted(declared - defined)
    assert {s for s in defined if not s.startswith("_")} <= declared, sorted(defined - declared)
    assert "plm_vec_dot_q8_0_scalar" not in defined  # internal kernels stay hidden
    assert all(pc.ALLOWED_UNDEFINED_VERSIONS.match(v) for v in undefined.values() if v)


def test_the_elf_report_fails_on_a_library_for_another_cpu_or_page_size():
    """The x86 build here is neither AArch64 nor 16 KiB aligned: both checks must say so."""
    lib = Path(native.LIBRARY)
    facts = pc.elf_facts(lib)
    assert facts["machine"] == 62 and facts["loads"] and not facts["textrel"]
    report = pc.Report()
    pc._elf_report(pc.TARGETS["aarch64"], lib, Path(native.header_path()).parent, report, check_exports=True)
    assert "libpocketlm.so: ELF machine" in report.failures
    if all(ld["align"] < pc.PAGE for ld in facts["loads"]):
        assert "libpocketlm.so: LOAD segments aligned to 16 KiB" in report.failures
    with pytest.raises(ValueError, match="not a little-endian ELF64"):
        pc.elf_facts(Path(__file__))


def test_port_check_refuses_an_unknown_target_and_names_missing_tools(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="--target must be one of aarch64"):
        pc.port_check("riscv64", tmp_path)
    monkeypatch.setattr(pc.shutil, "which", lambda tool: None)
    with pytest.raises(OSError, match="gcc-aarch64-linux-gnu qemu-user"):
        pc.port_check("aarch64", tmp_path)
