"""`pocketlm port-check --target aarch64 --out DIR`: libpocketlm for the phone's
CPU, built and tested before it reaches a device.

Steps, each reported and each able to fail the check:
  1. cross-build libpocketlm (and libpocketlm_jni.so where a JDK's headers are
     found) with Debian's gcc-aarch64-linux-gnu (cmake/aarch64-linux-gnu.cmake),
     into DIR/lib, with the public headers in DIR/include;
  2. run the C tests (ctest) under qemu-aarch64 with NEON (sdot included) and
     with the scalar kernels forced (POCKETLM_SIMD=0), and with NEON on a CPU
     without the dot-product extension (QEMU_CPU=cortex-a53);
  3. the kernels against NumPy's reference (test_reference, cases written here
     with pocketlm.kernels.reference), NEON and scalar;
  4. a program on MediaPipe's C API (tests/c/mp_api_check.c), cross-built
     against DIR, answers a prompt under qemu greedily on the built-in model as
     the x86 build does (pocketlm's Python API here): bit for bit with the
     scalar kernels on both sides, and NEON against AVX2 over a few dozen tokens;
  5. the library's ELF: machine, the alignment of every LOAD segment (16 KiB
     pages, as Android 15 devices need), exported symbols against the public
     headers, undefined symbols, text relocations, size.

What it cannot check is said in the report: this is an arm64 Linux/glibc build
under user-mode qemu, not the Android NDK with bionic (not installable here),
and qemu's timing says nothing about a phone's speed.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"aarch64": dict(toolchain="cmake/aarch64-linux-gnu.cmake", prefix="aarch64-linux-gnu-",
                           qemu="qemu-aarch64", sysroot="/usr/aarch64-linux-gnu", elf_machine=183,
                           packages="gcc-aarch64-linux-gnu qemu-user")}
PAGE = 16384
HEADERS = ("pocketlm.h", "llm_inference_engine.h")
# where libpocketlm may reach outside itself: the C library, libm and the thread library
ALLOWED_UNDEFINED_VERSIONS = re.compile(r"GLIBC_\d")


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def ok(self, what: str, detail: str = "") -> None:
        self.lines.append(f"  ok    {what}" + (f": {detail}" if detail else ""))

    def fail(self, what: str, detail: str) -> None:
        self.lines.append(f"  FAIL  {what}: {detail}")
        self.failures.append(what)

    def note(self, text: str) -> None:
        self.lines.append(f"        {text}")

    def section(self, title: str) -> None:
        self.lines.append(title)

    def print(self, out=sys.stdout) -> None:
        print("\n".join(self.lines), file=out, flush=True)
        self.lines.clear()


# ---- reference cases ---------------------------------------------------------------

OP_MATMUL, OP_RMS_NORM, OP_ROPE, OP_SOFTMAX, OP_ATTENTION, OP_ADD, OP_SILU_MUL = range(1, 8)
TYPE_IDS = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 8}


def _record(f, op: int, param: int, dims, args, *arrays) -> None:
    d = list(dims) + [0] * (8 - len(dims))
    a = list(args) + [0.0] * (4 - len(args))
    f.write(struct.pack("<II8q4fI", op, param, *d, *a, len(arrays)))
    for arr in arrays:
        b = np.ascontiguousarray(arr).tobytes()
        f.write(struct.pack("<Q", len(b)))
        f.write(b)


def write_reference_cases(path: str | Path, seed: int = 0) -> int:
    """Inputs and NumPy-reference outputs (pocketlm.kernels.reference) for
    native/tests/test_reference.c: every weight type's matmul at decode and
    prefill shapes, odd and even block counts, norms, RoPE in both layouts,
    softmax, causal and windowed GQA attention, add and SwiGLU. Returns the count."""
    from .kernels import reference as ref

    rng = np.random.default_rng(seed)
    f32 = np.float32
    n = 0
    with open(path, "wb") as f:
        f.write(b"PLMREF1\0")
        for qname, tid in TYPE_IDS.items():
            for m, nn, k in ((1, 45, 96), (1, 64, 576), (9, 37, 256), (4, 16, 4096)):
                w = rng.standard_normal((nn, k)).astype(f32)
                x = rng.standard_normal((m, k)).astype(f32)
                wq = ref.quantize(w, qname)
                _record(f, OP_MATMUL, tid, (m, nn, k), (), wq, x, ref.matmul(x, wq, qname))
                n += 1
        for rows, width, off in ((3, 576, 0.0), (2, 2048, 1.0), (1, 37, 0.0)):
            x = rng.standard_normal((rows, width)).astype(f32)
            w = rng.standard_normal(width).astype(f32)
            _record(f, OP_RMS_NORM, 0, (rows, width), (1e-6, off), x, w, ref.rms_norm(x, w, 1e-6, off))
            n += 1
        for mode, mid in (("neox", 0), ("gptj", 1)):
            x = rng.standard_normal((5, 4, 64)).astype(f32)
            pos = np.array([0, 1, 7, 100, 4095], dtype=np.int32)
            _record(f, OP_ROPE, mid, (5, 4, 64, 48), (10000.0, 1.0), x, pos,
                    ref.rope(x.copy(), pos, 10000.0, 48, mode))
            n += 1
        x = (rng.standard_normal((4, 1000)) * 8).astype(f32)
        _record(f, OP_SOFTMAX, 0, (4, 1000), (), x, ref.softmax(x))
        n += 1
        for n_q, n_kv, q0, heads, kv_heads, hd, window, softcap in ((1, 33, 32, 8, 2, 64, 0, 0.0),
                                                                    (6, 20, 14, 4, 4, 32, 5, 30.0)):
            q = rng.standard_normal((n_q, heads, hd)).astype(f32)
            kc = rng.standard_normal((n_kv, kv_heads, hd)).astype(f32)
            vc = rng.standard_normal((n_kv, kv_heads, hd)).astype(f32)
            scale = 1.0 / np.sqrt(hd)
            want = ref.attention(q, kc, vc, n_kv, q0, scale, softcap, window)
            _record(f, OP_ATTENTION, 0, (n_q, n_kv, q0, heads, kv_heads, hd, window), (scale, softcap), q, kc, vc, want)
            n += 1
        a, b = rng.standard_normal(1003).astype(f32), rng.standard_normal(1003).astype(f32)
        _record(f, OP_ADD, 0, (1003,), (), a, b, ref.add(a, b))
        _record(f, OP_SILU_MUL, 0, (1003,), (), a, b, ref.silu_mul(a, b))
        n += 2
    return n


# ---- ELF ---------------------------------------------------------------------------------


def elf_facts(path: Path) -> dict:
    """Machine, LOAD segments (offset, vaddr, align) and whether DT_TEXTREL /
    DF_TEXTREL is set, read from the ELF64 headers."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path} is not a little-endian ELF64 file")
    (e_type, e_machine, _, _, e_phoff, _, _, _, e_phentsize, e_phnum) = struct.unpack_from("<HHIQQQIHHH", data, 16)
    loads, textrel = [], False
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, p_align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == 1:  # PT_LOAD
            loads.append(dict(offset=p_offset, vaddr=p_vaddr, align=p_align, flags=p_flags))
        elif p_type == 2:  # PT_DYNAMIC
            for j in range(0, p_filesz, 16):
                tag, val = struct.unpack_from("<qQ", data, p_offset + j)
                if tag == 0:
                    break
                if tag == 22 or (tag == 30 and val & 0x4):  # DT_TEXTREL, DT_FLAGS & DF_TEXTREL
                    textrel = True
    return dict(type=e_type, machine=e_machine, loads=loads, textrel=textrel, size=len(data))


def dynamic_symbols(path: Path, nm: str) -> tuple[set[str], dict[str, str]]:
    """(defined function/object names, {undefined name: version}) of the dynamic symbol table."""
    out = subprocess.run([nm, "-D", "--with-symbol-versions", str(path)], capture_output=True, text=True,
                         check=True).stdout
    defined, undefined = set(), {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("U", "w"):
            name, _, version = parts[1].partition("@")
            undefined[name] = version.lstrip("@")
        elif len(parts) == 3 and parts[1] in ("T", "D", "B", "R", "W", "V", "i"):
            defined.add(parts[2].split("@")[0])
    return defined, undefined


def header_functions(include: Path) -> set[str]:
    """Names of the functions the public headers declare."""
    names = set()
    for h in HEADERS:
        text = re.sub(r"/\*.*?\*/", "", (include / h).read_text(), flags=re.S)
        names.update(re.findall(r"\b((?:plm_|LlmInferenceEngine_)\w+)\s*\(", text))
    return {n for n in names if not n.endswith("_fn")}


# ---- the steps ------------------------------------------------------------------------------


def _run(cmd, what: str, report: Report, env=None, timeout: int = 900, cwd=None) -> subprocess.CompletedProcess | None:
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        report.fail(what, f"did not finish in {timeout} s")
        return None
    if p.returncode != 0:
        tail = (p.stdout + p.stderr).strip().splitlines()[-25:]
        report.fail(what, f"exit {p.returncode} after {time.monotonic() - t0:.0f} s\n          " +
                    "\n          ".join(tail))
        return None
    return p


def check_tools(target: str) -> list[str]:
    t = TARGETS[target]
    return [tool for tool in (t["prefix"] + "gcc", t["prefix"] + "nm", t["qemu"], "cmake") if shutil.which(tool) is None]


def port_check(target: str, out: str | Path, jobs: int | None = None, model: str | Path | None = None,
               stream=sys.stdout) -> int:
    """Runs the checks, prints the report to stream, returns 0 when all pass."""
    if target not in TARGETS:
        raise ValueError(f"--target must be one of {', '.join(TARGETS)}, not {target!r}")
    t = TARGETS[target]
    missing = check_tools(target)
    if missing:
        raise OSError(f"port-check --target {target} needs {', '.join(missing)} (Debian: apt-get install "
                      f"{t['packages']} cmake)")
    out = Path(out).resolve()
    build = out / "build"
    jobs = jobs or os.cpu_count() or 1
    report = Report()
    emu_env = dict(os.environ, QEMU_LD_PREFIX=t["sysroot"])

    # 1. cross-build
    report.section(f"pocketlm port-check: {target} (arm64 Linux/glibc), into {out}")
    report.section("build")
    cfg = _run(["cmake", "-S", str(ROOT), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={ROOT / t['toolchain']}",
                "-DCMAKE_BUILD_TYPE=Release", "-DPLM_BUILD_TESTS=ON"], "configure", report)
    built = cfg is not None and _run(["cmake", "--build", str(build), "-j", str(jobs)], "cross-build", report)
    report.print(stream)
    if not built:
        report.print(stream)
        return 1
    (out / "lib").mkdir(parents=True, exist_ok=True)
    (out / "include").mkdir(parents=True, exist_ok=True)
    libs = [n for n in ("libpocketlm.so", "libpocketlm_jni.so") if (build / "native" / n).is_file()]
    for name in libs:
        shutil.copy2(build / "native" / name, out / "lib" / name)
    for h in HEADERS:
        shutil.copy2(ROOT / "native" / "include" / h, out / "include" / h)
    report.ok("cross-built", ", ".join(f"lib/{n}" for n in libs) + "; include/" + ", include/".join(HEADERS))
    if "libpocketlm_jni.so" not in libs:
        report.note("libpocketlm_jni.so not built: no JDK headers (jni.h) found on this machine")

    # 2. the C tests under qemu, per kernel path
    report.section(f"C tests under {t['qemu']}")
    for label, env in (("NEON + sdot", {"POCKETLM_SIMD": "2"}),
                       ("NEON without sdot (Cortex-A53)", {"POCKETLM_SIMD": "2", "QEMU_CPU": "cortex-a53"}),
                       ("scalar (POCKETLM_SIMD=0)", {"POCKETLM_SIMD": "0"})):
        p = _run(["ctest", "--test-dir", str(build), "--output-on-failure", "-j", str(jobs)], f"ctest, {label}",
                 report, env=dict(emu_env, **env))
        if p is not None:
            summary = next((ln for ln in p.stdout.splitlines() if "tests passed" in ln), "passed")
            report.ok(f"ctest, {label}", summary.strip())

    # 3. NumPy's reference
    cases = out / "reference-cases.bin"
    n = write_reference_cases(cases)
    qemu = [t["qemu"], "-L", t["sysroot"]]
    for label, env in (("NEON + sdot", {"POCKETLM_SIMD": "2"}), ("scalar", {"POCKETLM_SIMD": "0"})):
        p = _run([*qemu, str(build / "native" / "test_reference"), str(cases)], f"kernels vs NumPy, {label}",
                 report, env=dict(emu_env, **env))
        if p is not None:
            report.ok(f"kernels vs NumPy, {label}", f"{n} cases")
    report.print(stream)

    # 4. MediaPipe's C API program, cross-built against DIR, against the x86 Python API
    report.section("a program on MediaPipe's C API, cross-built against DIR/include and DIR/lib")
    _end_to_end(t, out, model, report, emu_env)
    report.print(stream)

    # 5. the ELF report
    report.section("libpocketlm.so")
    for name in libs:
        _elf_report(t, out / "lib" / name, out / "include", report, check_exports=name == "libpocketlm.so")
    report.section("not checked here")
    report.note("this is an arm64 Linux/glibc build: the Android NDK (bionic, its linker namespaces and")
    report.note("API levels) is not installable on this machine, so an NDK build and a device run remain to do;")
    report.note("qemu-aarch64 runs the code, not the phone's timing: speed comes from `pocketlm` device profiles.")
    verdict = "FAILED: " + ", ".join(report.failures) if report.failures else "all checks passed"
    report.section(f"port-check {target}: {verdict}")
    report.print(stream)
    return 1 if report.failures else 0


def _end_to_end(t: dict, out: Path, model, report: Report, env: dict) -> None:
    from .builtin import default_model_path

    model = Path(model) if model else default_model_path()
    exe = out / "build" / "mp_api_check_cross"
    src = ROOT / "tests" / "c" / "mp_api_check.c"
    if _run([t["prefix"] + "gcc", "-O2", str(src), "-o", str(exe), f"-I{out / 'include'}", f"-L{out / 'lib'}",
             "-Wl,-rpath,$ORIGIN/../lib", "-lpocketlm", "-lpthread"], "cross-compile mp_api_check.c", report) is None:
        return
    (out / "bin").mkdir(exist_ok=True)
    shutil.copy2(exe, out / "bin" / "mp_api_check")
    prompt = "Write a short story about a robot who learns to paint."
    # the scalar kernels are the same C on both CPUs: the whole answer must match bit for bit; the SIMD
    # kernels sum F32 lanes in their own order (4 NEON lanes, 8 AVX2 ones), so a near tie can go the
    # other way after many tokens: they are compared over the first few dozen
    for label, level, max_tokens in (("scalar kernels on both", 0, 72), ("NEON against AVX2", 2, 72)):
        what = f"greedy answer equals the x86 build's, {label}"
        p = _run([t["qemu"], "-L", t["sysroot"], str(out / "bin" / "mp_api_check"), str(model), str(max_tokens),
                  "1", "0", "0", prompt, ""], what, report, env=dict(env, POCKETLM_SIMD=str(level)))
        if p is None:
            continue
        got = dict(r.split(" ", 1) for r in p.stdout.split("\x1e") if " " in r).get("SYNC1")
        want = _x86_answer(model, prompt, max_tokens, level)
        if got is None:
            report.fail(what, f"no answer: {p.stdout[-300:]!r}")
        elif got != want:
            report.fail(what, f"arm64 {got!r}\n          x86   {want!r}")
        else:
            report.ok(what, f"{model.name}, maxTokens {max_tokens}, {len(got.split())} words: {got[:60]!r}...")


def _x86_answer(model: Path, prompt: str, max_tokens: int, simd_level: int) -> str:
    """The greedy answer of pocketlm's C engine here (through the Python API), at that SIMD level."""
    from .kernels.native import lib
    from .tasks import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions

    prev = lib.plm_set_simd(simd_level)
    try:
        opts = LlmInferenceOptions.builder().setModelPath(str(model)).setMaxTokens(max_tokens).build()
        with LlmInference.createFromOptions(None, opts) as llm:
            s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())
            s.addQueryChunk(prompt)
            return s.generateResponse()
    finally:
        lib.plm_set_simd(prev)


def _elf_report(t: dict, lib: Path, include: Path, report: Report, check_exports: bool) -> None:
    facts = elf_facts(lib)
    if facts["machine"] == t["elf_machine"]:
        report.ok(f"{lib.name}: ELF machine", "AArch64")
    else:
        report.fail(f"{lib.name}: ELF machine", f"e_machine {facts['machine']}, expected {t['elf_machine']}")
    bad = [ld for ld in facts["loads"] if ld["align"] < PAGE or ld["offset"] % PAGE != ld["vaddr"] % PAGE]
    aligns = ", ".join(f"0x{ld['align']:x}" for ld in facts["loads"])
    if facts["loads"] and not bad:
        report.ok(f"{lib.name}: LOAD segments aligned to 16 KiB", aligns)
    else:
        report.fail(f"{lib.name}: LOAD segments aligned to 16 KiB", aligns or "no LOAD segment")
    if facts["textrel"]:
        report.fail(f"{lib.name}: no text relocations", "DT_TEXTREL is set")
    else:
        report.ok(f"{lib.name}: no text relocations")
    defined, undefined = dynamic_symbols(lib, t["prefix"] + "nm")
    if check_exports:
        declared = header_functions(include)
        missing = sorted(declared - defined)
        extra = sorted(s for s in defined - declared if not s.startswith("_"))
        if missing:
            report.fail(f"{lib.name}: every header function exported", f"missing: {', '.join(missing[:12])}")
        else:
            report.ok(f"{lib.name}: every header function exported", f"{len(declared)} functions")
        if extra:
            report.fail(f"{lib.name}: nothing exported beyond the headers", ", ".join(extra[:12]))
        else:
            report.ok(f"{lib.name}: nothing exported beyond the headers")
    else:
        jni = sorted(s for s in defined if s.startswith("Java_") or s.startswith("JNI_"))
        report.ok(f"{lib.name}: JNI entry points", f"{len(jni)}")
    outside = sorted(f"{n}@{v}" if v else n for n, v in undefined.items()
                     if not ALLOWED_UNDEFINED_VERSIONS.match(v or "") and not n.startswith(("plm_", "LlmInference"))
                     and n not in ("__gmon_start__", "_ITM_deregisterTMCloneTable", "_ITM_registerTMCloneTable"))
    if outside:
        report.fail(f"{lib.name}: undefined symbols resolved by glibc", ", ".join(outside[:12]))
    else:
        report.ok(f"{lib.name}: undefined symbols resolved by glibc", f"{len(undefined)} symbols, all GLIBC_*"
                  + (" or libpocketlm's" if any(n.startswith(("plm_", "LlmInference")) for n in undefined) else ""))
    report.ok(f"{lib.name}: size", f"{facts['size'] / 1024:.0f} KiB")
