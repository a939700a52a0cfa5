"""`pocketlm port-check --target aarch64 --out DIR`: libpocketlm for the phone's
CPU, built and tested before it reaches a device.

Steps, each reported and each able to fail the check:
  1. cross-build libpocketlm (and libpocketlm_jni.so where a JDK's headers are
     found) with Debian's gcc-aarch64-linux-gnu (cmake/aarch64-linux-gnu.cmake),
     into DIR/lib, with the public headers in DIR/include;
  2. run the C tests (ctest) under qemu-aarch64 with NEON, sdot and the smmla
     prefill tile (QEMU_CPU=max, which has I8MM), with NEON and sdot on a CPU
     without I8MM (QEMU_CPU=neoverse-n1), with NEON on a CPU without the
     dot-product extension (QEMU_CPU=cortex-a53), and with the scalar kernels
     forced (POCKETLM_SIMD=0);
  3. the kernels against NumPy's reference (test_reference, cases written here
     with pocketlm.kernels.reference), NEON (sdot and smmla) and scalar;
  4. a program on MediaPipe's C API (tests/c/mp_api_check.c), cross-built
     against DIR, answers a prompt under qemu greedily on the built-in model (and,
     in a checkout, on the .task bundles MediaPipe's own bundler wrote) as the
     x86 build does (pocketlm's Python API here): bit for bit with the scalar
     kernels on both sides, and NEON against AVX2 over a few dozen tokens;
  5. how far the phone's arithmetic is from the desktop's: tests/c/logits_dump.c,
     cross-built, runs fixed token sequences teacher-forced under qemu with NEON
     and with the scalar kernels, and their logits are held against the x86
     build's: top-1 agreement, KL(x86 || arm) and the largest logit difference,
     a table per build. The sequences are a few prompts (--prompts), sent as the
     API sends them, each followed by x86's greedy answer, on --model. Fails only
     on more than rounding: top-1 agreement below 90% where x86's top-2 gap is
     0.5 logits or more, a mean KL above 0.05 nats or any position's above 1 nat
     (MIN_AGREEMENT, NEAR_TIE, MAX_MEAN_KL, MAX_KL). Flags the near-ties (top-2
     gap under 0.5) among the first 3 answer tokens, where greedy answers may
     part between builds without a bug;
  6. the library's ELF: machine, the alignment of every LOAD segment (16 KiB
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
# bundles made by MediaPipe's own bundler (tests/fixtures/mediapipe.py), run end to end in a checkout
BUNDLES = ROOT / "tests" / "fixtures" / "mediapipe"
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


# ---- the phone's arithmetic against the desktop's ---------------------------------------------
#
# The same token sequences are run teacher-forced by tests/c/logits_dump.c on every build and
# their logits compared position by position with the x86 build's. Kernel paths round
# differently (lane counts, summation order, how a Q4 block's offset is folded in) and the
# differences grow over the layers: measured on the built-in model, NEON and scalar stand ~0.004
# nats (mean KL) and up to ~2 logits (far down the distribution) from x86's SIMD build, as far as
# that stands from its own scalar twins, and top-2 gaps up to ~0.15 flipped. A real bug (a wrong
# block layout, a lost tail, a bad reduction) moves whole distributions: the check fails on that.

NEAR_TIE = 0.5  # logits: a top-2 gap below this on x86 makes a position a near-tie
FIRST_TOKENS = 3  # answer tokens the near-tie flag looks at
ANSWER_TOKENS = 20  # x86's greedy continuation of each prompt, part of the sequence every build runs
DECODE_STEPS = 2  # answer tokens run as one-token decode steps after the prefill, as a generation runs them
MIN_AGREEMENT = 0.90  # top-1 agreement on the positions that are not near-ties: below it the check fails
MAX_MEAN_KL = 0.05  # nats, mean KL(x86 || arm) over all positions: above it the check fails
MAX_KL = 1.0  # nats at any one position: above it the check fails

# the built-in sequences: (prompt, sent in the model's chat template as the API sends it); ~100
# positions, which qemu runs in about a minute with the scalar kernels (the NEON run beside it)
DEFAULT_PROMPTS = (("What is the capital of France?", True),
                   ("The river flows through the old town, and", False),
                   ("def fibonacci(n):\n", False))


def load_prompts(path: str | Path) -> list[str]:
    """--prompts FILE: a JSON list of strings (a file whose text starts with '['), else one prompt
    per line (blank lines skipped; a prompt with line breaks needs the JSON form)."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        import json

        prompts = json.loads(text)
        if not isinstance(prompts, list) or not all(isinstance(x, str) and x for x in prompts):
            raise ValueError(f"{path}: a JSON prompts file is a list of non-empty strings")
    else:
        prompts = [ln for ln in text.splitlines() if ln.strip()]
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


@dataclass
class TokenSequence:
    """A prompt's ids and x86's greedy answer, and how a generation runs them."""

    prompt: str
    ids: list[int]
    n_prompt: int
    chunks: list[int]  # ids per eval call: the prompt's prefill, decode steps of one id, the rest of the answer


def chunk_sizes(n_prompt: int, n: int, decode_steps: int = DECODE_STEPS) -> list[int]:
    """The prefill of the prompt; the first answer tokens one decode step each (the path a
    generation takes for the tokens the near-tie flag looks at); the rest in one batch (decode
    steps are ~4x dearer under qemu than batched positions)."""
    steps = min(decode_steps, n - n_prompt)
    rest = n - n_prompt - steps
    return [n_prompt] + [1] * steps + ([rest] if rest else [])


def reference_sequences(engine, prompts, answer_tokens: int = ANSWER_TOKENS,
                        decode_steps: int = DECODE_STEPS) -> list[TokenSequence]:
    """Each prompt's ids as the API sends them (BOS, the chat template when templated and the
    model has one) followed by the greedy answer of this (x86) build, up to a stop token or
    answer_tokens. prompts: (text, templated) pairs."""
    from .engine.native import NativeTokens
    from .sampling import Sampler

    seqs = []
    for text, templated in prompts:
        session = engine.new_session(Sampler(top_k=1), engine.templates if templated else None)
        try:
            session.add_query_chunk(text)
            ids = [int(i) for i in session._close_turn()]  # what a generation would prefill
        finally:
            session.release()
        answer: list[int] = []
        gen = NativeTokens(engine.native, len(ids) + answer_tokens + 1, sampler=Sampler(top_k=1))
        gen.add(ids)
        gen.generate(sorted(engine.stop_ids), lambda t: answer.append(int(t)) or len(answer) >= answer_tokens)
        seq = ids + answer
        seqs.append(TokenSequence(text, seq, len(ids), chunk_sizes(len(ids), len(seq), decode_steps)))
    return seqs


def teacher_forced_logits(native_model, seq: TokenSequence, n_threads: int = 0) -> np.ndarray:
    """[n, vocab] logits after every id of seq, run in chunks as logits_dump.c runs them."""
    from .engine.native import NativeTokens

    t = NativeTokens(native_model, len(seq.ids), n_threads=n_threads)
    out, at = [], 0
    for c in seq.chunks:
        out.append(t.eval(seq.ids[at:at + c], all_logits=True))
        at += c
    return np.concatenate(out)


def write_token_file(path: str | Path, seqs) -> None:
    """logits_dump.c's input: "PLMTOK1\\0", n_seq, then per sequence n, n_chunks, chunk sizes, ids."""
    with open(path, "wb") as f:
        f.write(b"PLMTOK1\0" + struct.pack("<I", len(seqs)))
        for s in seqs:
            f.write(struct.pack(f"<II{len(s.chunks)}I", len(s.ids), len(s.chunks), *s.chunks))
            f.write(np.asarray(s.ids, dtype="<i4").tobytes())


def read_logits(path: str | Path):
    """logits_dump.c's output, one [n, vocab] float32 array per sequence (a generator)."""
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) != 16 or head[:8] != b"PLMLOG1\0":
            raise ValueError(f"{path}: not a logits_dump output")
        n_seq, vocab = struct.unpack("<II", head[8:])
        for _ in range(n_seq):
            (n,) = struct.unpack("<I", f.read(4))
            a = np.fromfile(f, dtype="<f4", count=n * vocab)
            if a.size != n * vocab:
                raise ValueError(f"{path}: truncated")
            yield a.reshape(n, vocab)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(p || q) in nats per position (last axis: the vocabulary), in float64."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return np.maximum((np.exp(lp) * (lp - lq)).sum(axis=-1), 0.0)


def top2_gap(logits: np.ndarray) -> np.ndarray:
    """top-1 minus top-2 logit per position."""
    part = np.partition(np.asarray(logits, dtype=np.float64), -2, axis=-1)
    return part[..., -1] - part[..., -2]


@dataclass
class Agreement:
    """One build's logits against the x86 build's over the same positions."""

    positions: int = 0
    top1: float = float("nan")  # share of positions whose top token is x86's
    n_clear: int = 0  # positions whose top-2 gap on x86 is at least NEAR_TIE
    top1_clear: float = float("nan")  # top-1 agreement over those
    mean_kl: float = float("nan")  # KL(x86 || build), nats
    max_kl: float = float("nan")
    max_abs: float = float("nan")  # largest |logit difference|, any position, any token
    max_rel: float = float("nan")  # the largest of a position's |difference| over its x86 logit range
    bit_exact: bool = False


def compare_logits(ref_seqs, got_seqs, margin: float = NEAR_TIE) -> Agreement:
    """Agreement of got with ref (x86), over sequences of [n, vocab] logits."""
    agree, clear, kl, absd, rel = [], [], [], [], []
    exact = True
    for ref, got in zip(ref_seqs, got_seqs, strict=True):
        if ref.shape != got.shape:
            raise ValueError(f"logits of shape {got.shape} against x86's {ref.shape}")
        agree.append(ref.argmax(axis=-1) == got.argmax(axis=-1))
        clear.append(top2_gap(ref) >= margin)
        kl.append(kl_divergence(ref, got))
        d = np.abs(ref.astype(np.float64) - got).max(axis=-1)
        absd.append(d)
        rel.append(d / np.maximum(ref.max(axis=-1) - ref.min(axis=-1), 1e-30))
        exact = exact and bool(np.array_equal(ref, got))
    if not agree:
        return Agreement()
    agree, clear, kl, absd, rel = (np.concatenate(x) for x in (agree, clear, kl, absd, rel))
    return Agreement(positions=int(agree.size), top1=float(agree.mean()), n_clear=int(clear.sum()),
                     top1_clear=float(agree[clear].mean()) if clear.any() else float("nan"),
                     mean_kl=float(kl.mean()), max_kl=float(kl.max()), max_abs=float(absd.max()),
                     max_rel=float(rel.max()), bit_exact=exact)


def agreement_failures(a: Agreement) -> list[str]:
    """Why these figures are evidence of a bug rather than rounding (empty: they are not)."""
    why = []
    if a.positions == 0:
        return ["no positions compared"]
    if a.n_clear and a.top1_clear < MIN_AGREEMENT:
        why.append(f"top-1 agreement {a.top1_clear:.1%} < {MIN_AGREEMENT:.0%} where x86's top-2 gap is "
                   f">= {NEAR_TIE}")
    if not a.mean_kl <= MAX_MEAN_KL:
        why.append(f"mean KL {a.mean_kl:.3g} > {MAX_MEAN_KL}")
    if not a.max_kl <= MAX_KL:
        why.append(f"max KL {a.max_kl:.3g} > {MAX_KL}")
    return why


def near_ties(ref_logits: np.ndarray, n_prompt: int, first: int = FIRST_TOKENS,
              margin: float = NEAR_TIE) -> list[tuple[int, float, int, int]]:
    """(answer token k from 1, top-2 gap, top-1 id, top-2 id) for each of the first answer tokens
    whose top-2 gap on x86 is below margin. Answer token k is picked from the logits after id
    n_prompt - 2 + k."""
    out = []
    for k in range(1, first + 1):
        pos = n_prompt - 2 + k
        if pos >= len(ref_logits):
            break
        row = ref_logits[pos]
        top = np.argsort(-row, kind="stable")[:2]
        gap = float(row[top[0]]) - float(row[top[1]])
        if gap < margin:
            out.append((k, gap, int(top[0]), int(top[1])))
    return out


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
               stream=sys.stdout, prompts: list[str] | None = None) -> int:
    """Runs the checks, prints the report to stream, returns 0 when all pass. model: the GGUF or
    .task of steps 4 and 5 (default: the built-in one); prompts: step 5's (default: DEFAULT_PROMPTS),
    each sent in the model's chat template as the API sends it."""
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
    for label, env in (("NEON + sdot + i8mm", {"POCKETLM_SIMD": "2", "QEMU_CPU": "max"}),
                       ("NEON + sdot without i8mm (Neoverse N1)", {"POCKETLM_SIMD": "2", "QEMU_CPU": "neoverse-n1"}),
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
    for label, env in (("NEON + sdot + i8mm", {"POCKETLM_SIMD": "2", "QEMU_CPU": "max"}),
                       ("scalar", {"POCKETLM_SIMD": "0"})):
        p = _run([*qemu, str(build / "native" / "test_reference"), str(cases)], f"kernels vs NumPy, {label}",
                 report, env=dict(emu_env, **env))
        if p is not None:
            report.ok(f"kernels vs NumPy, {label}", f"{n} cases")
    report.print(stream)

    # 4. MediaPipe's C API program, cross-built against DIR, against the x86 Python API
    report.section("a program on MediaPipe's C API, cross-built against DIR/include and DIR/lib")
    _end_to_end(t, out, model, report, emu_env)
    report.print(stream)

    # 5. the phone's arithmetic against the desktop's
    report.section("the phone's arithmetic against the x86 build's: logits_dump.c, cross-built, under qemu")
    _arithmetic(t, out, model, prompts, report, emu_env)
    report.print(stream)

    # 6. the ELF report
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

    user_model = model is not None
    model = Path(model) if model else default_model_path()
    exe = out / "build" / "mp_api_check_cross"
    src = ROOT / "tests" / "c" / "mp_api_check.c"
    if _run([t["prefix"] + "gcc", "-O2", str(src), "-o", str(exe), f"-I{out / 'include'}", f"-L{out / 'lib'}",
             "-Wl,-rpath,$ORIGIN/../lib", "-lpocketlm", "-lpthread"], "cross-compile mp_api_check.c", report) is None:
        return
    (out / "bin").mkdir(exist_ok=True)
    shutil.copy2(exe, out / "bin" / "mp_api_check")
    # the scalar kernels are the same C on both CPUs: the whole answer must match bit for bit; the SIMD
    # kernels sum F32 lanes in their own order (4 NEON lanes, 8 AVX2 ones), so a near tie can go the
    # other way after many tokens: they are compared over the first few dozen
    runs = [(model, "Write a short story about a robot who learns to paint.", 72)]
    # and, in a checkout, the bundles MediaPipe's own bundler wrote (their first zip entry is padded)
    if not user_model and BUNDLES.is_dir():
        runs += [(bundle, "the model runs on a phone", 160) for bundle in sorted(BUNDLES.glob("*.task"))]
    for path, prompt, max_tokens in runs:
        for label, level in (("scalar kernels on both", 0), ("NEON against AVX2", 2)):
            what = f"greedy answer equals the x86 build's, {path.name}, {label}"
            p = _run([t["qemu"], "-L", t["sysroot"], str(out / "bin" / "mp_api_check"), str(path), str(max_tokens),
                      "1", "0", "0", prompt, ""], what, report, env=dict(env, POCKETLM_SIMD=str(level)))
            if p is None:
                continue
            got = dict(r.split(" ", 1) for r in p.stdout.split("\x1e") if " " in r).get("SYNC1")
            want, ids, n_prompt = _x86_answer(path, prompt, max_tokens, level)
            if got is None:
                report.fail(what, f"no answer: {p.stdout[-300:]!r}")
            elif got.lstrip() != want:  # the Python API strips a response's leading whitespace, as Android does
                # SIMD builds may part where x86's top two logits are within rounding of each other; anywhere
                # else, or with the scalar kernels (the same C on both CPUs), a difference is a bug
                gap, at = _parting_gap(path, ids, n_prompt, want, got.lstrip()) if level else (None, 0)
                if gap is not None and gap < NEAR_TIE:
                    report.ok(what, f"the same for {at} answer tokens, then parted at a near-tie (x86's top two "
                                    f"within {gap:.3f}): arm64 {got[:60]!r}... x86 {want[:60]!r}...")
                else:
                    why = "" if gap is None else f" (x86's top two {gap:.3f} apart there: not a near-tie)"
                    report.fail(what, f"arm64 {got!r}\n          x86   {want!r}{why}")
            else:
                report.ok(what, f"maxTokens {max_tokens}, {len(got)} characters: {got[:40]!r}...")


def _arithmetic(t: dict, out: Path, model, prompts, report: Report, env: dict) -> None:
    """Step 5: teacher-forced logits of the same sequences, arm64 (NEON, scalar) against x86."""
    from .builtin import default_model_path
    from .engine.base import Engine
    from .kernels.native import lib

    t0 = time.monotonic()
    model = Path(model) if model else default_model_path()
    exe = out / "build" / "logits_dump_cross"
    if _run([t["prefix"] + "gcc", "-O2", str(ROOT / "tests" / "c" / "logits_dump.c"), "-o", str(exe),
             f"-I{out / 'include'}", f"-L{out / 'lib'}", "-Wl,-rpath,$ORIGIN/../lib", "-lpocketlm", "-lpthread"],
            "cross-compile logits_dump.c", report) is None:
        return
    (out / "bin").mkdir(exist_ok=True)
    shutil.copy2(exe, out / "bin" / "logits_dump")
    prev = lib.plm_set_simd(2)  # the x86 build as it dispatches, whatever POCKETLM_SIMD says here
    try:
        engine = Engine(model, max_tokens=2048, engine="native")
        source = getattr(engine.model, "source", None)
        if not source:
            raise ValueError("the C library maps a GGUF file or a .task whose model entry is stored, not "
                             "compressed; this model is neither")
        pairs = [(p, True) for p in prompts] if prompts is not None else list(DEFAULT_PROMPTS)
        seqs = reference_sequences(engine, pairs)
        x86 = [teacher_forced_logits(engine.native, s) for s in seqs]
        lib.plm_set_simd(0)
        x86_scalar = [teacher_forced_logits(engine.native, s) for s in seqs]
    except (ValueError, OSError) as e:
        report.fail("token sequences of the x86 build", f"{model}: {e}")
        return
    finally:
        lib.plm_set_simd(prev)
    features = lib.plm_cpu_features()
    x86_label = "x86 AVX-512 VNNI" if features & 4 else "x86 AVX2" if features & 1 else "x86 scalar"
    for i, (s, ref) in enumerate(zip(seqs, x86)):
        # the prefill's last row and the decode steps run as the generation ran: they pick its tokens
        for pos in range(s.n_prompt - 1, min(s.n_prompt + DECODE_STEPS, len(s.ids) - 1)):
            if int(ref[pos].argmax()) != s.ids[pos + 1]:
                report.note(f"prompt {i + 1}: x86's teacher-forced logits pick {int(ref[pos].argmax())} where its "
                            f"greedy answer has {s.ids[pos + 1]} (token {pos + 2 - s.n_prompt})")
                break
    tokens = out / "build" / "sequences.bin"
    write_token_file(tokens, seqs)
    n_pos = sum(len(s.ids) for s in seqs)

    # both arm64 runs at once, half the cores each: the scalar one sets the time
    threads = str(max(1, (os.cpu_count() or 2) // 2))
    runs = {"NEON + sdot + i8mm": "2", "scalar (POCKETLM_SIMD=0)": "0"}
    procs = {}
    for label, level in runs.items():
        cmd = [t["qemu"], "-L", t["sysroot"], str(out / "bin" / "logits_dump"), source[0], str(source[1]),
               str(source[2]), str(tokens), str(out / "build" / f"logits-simd{level}.bin"), threads]
        procs[label] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         env=dict(env, POCKETLM_SIMD=level, QEMU_CPU="max")), time.monotonic())
    arm, took = {}, {}
    for label, (proc, started) in procs.items():
        try:
            so, se = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            report.fail(f"logits under qemu, {label}", "did not finish in 600 s")
            continue
        took[label] = time.monotonic() - started
        if proc.returncode != 0:
            report.fail(f"logits under qemu, {label}", f"exit {proc.returncode}: {(so + se).strip()[-400:]}")
            continue
        arm[label] = out / "build" / f"logits-simd{runs[label]}.bin"

    rows = []
    for label, path in arm.items():
        rows.append((f"arm64 {label}", x86_label, compare_logits(x86, read_logits(path))))
    if "scalar (POCKETLM_SIMD=0)" in arm:
        rows.append(("arm64 scalar (POCKETLM_SIMD=0)", "x86 scalar",
                     compare_logits(x86_scalar, read_logits(arm["scalar (POCKETLM_SIMD=0)"]))))
    report.ok(f"teacher-forced logits, {model.name}",
              f"{len(seqs)} sequences, {n_pos} positions (prompt prefills, {DECODE_STEPS} decode steps, "
              f"the rest of x86's greedy answer batched)")
    report.note(f"{'build':32s} {'against':18s} {'positions':>9s} {'top-1':>7s} {'non-tie':>8s} {'mean KL':>9s} "
                f"{'max KL':>9s}  max |dlogit| (of range)")
    for build, against, a in rows:
        report.note(f"{build:32s} {against:18s} {a.positions:9d} {a.top1:7.1%} {a.top1_clear:8.1%} "
                    f"{a.mean_kl:9.2e} {a.max_kl:9.2e}  " +
                    ("0 (bit for bit)" if a.bit_exact else f"{a.max_abs:.3g} ({a.max_rel:.1%})"))
    report.note(f"non-tie: positions whose top-2 gap on x86 is >= {NEAR_TIE}; a build fails on top-1 agreement "
                f"< {MIN_AGREEMENT:.0%} there,")
    report.note(f"a mean KL > {MAX_MEAN_KL} or any position's KL > {MAX_KL} nat (rounding alone: ~0.005 mean KL "
                "on the built-in model)")
    for build, against, a in rows:
        why = agreement_failures(a)
        what = f"{build} against {against}"
        if why:
            report.fail(what, "; ".join(why))
        else:
            report.ok(what, "bit for bit" if a.bit_exact else "apart by rounding only")

    # near-ties among the first answer tokens: where greedy answers may part without a bug
    tok = engine.tokenizer

    def piece(i: int) -> str:  # a byte of a longer character decodes to U+FFFD alone: its id says more
        text = tok.decode([int(i)])
        return repr(text) if "\ufffd" not in text else f"#{int(i)}"

    picks = {label: [lg.argmax(axis=-1) for lg in read_logits(path)] for label, path in arm.items()}
    flagged = 0
    for i, (s, ref) in enumerate(zip(seqs, x86)):
        for k, gap, a, b in near_ties(ref, s.n_prompt):
            flagged += 1
            pos = s.n_prompt - 2 + k
            chosen = "".join(f", {label.split(' (')[0]} {piece(p[i][pos])}" for label, p in picks.items())
            report.note(f"prompt {i + 1} {s.prompt[:48]!r}: near-tie at answer token {k} (top-2 within {gap:.3f}: "
                        f"{piece(a)} {float(ref[pos, a]):.3f}, {piece(b)} {float(ref[pos, b]):.3f}); picked: "
                        f"x86 {piece(a)}{chosen}")
    if flagged:
        report.note("near-ties: greedy answers may differ between builds there without a bug")
    else:
        report.note(f"no near-tie (top-2 gap < {NEAR_TIE}) among the first {FIRST_TOKENS} answer tokens")
    report.note("NEON without sdot or i8mm is not run here: its kernels give the sdot and smmla ones' results "
                "bit for bit (ctest above runs them)")
    report.note(f"took {time.monotonic() - t0:.0f} s (qemu: " +
                ", ".join(f"{label.split(' (')[0]} {sec:.0f} s" for label, sec in took.items()) + ", side by side)")


def _parting_gap(model: Path, ids: list[int], n_prompt: int, want: str, got: str) -> tuple[float | None, int]:
    """Where two greedy answers part: x86's top-2 logit gap at the first answer token whose text is not in
    both (from x86's tokens: ids, the first n_prompt of them the prompt), and how many answer tokens came before."""
    from .engine.base import Engine
    from .model.forward import KVCache

    common = 0
    while common < min(len(want), len(got)) and want[common] == got[common]:
        common += 1
    engine = Engine(str(model), len(ids) + 1)
    try:
        tok, answer = engine.tokenizer, ids[n_prompt:]
        k = 0  # answer tokens whose text lies within the common prefix
        while k < len(answer) and len(tok.decode(answer[: k + 1]).lstrip()) <= common:
            k += 1
        if k >= len(answer):
            return None, k
        logits = engine.model.forward(ids[: n_prompt + k], KVCache(engine.model.cfg, n_prompt + k), last_only=True)
        return float(top2_gap(logits[0])), k
    finally:
        engine.close()


def _x86_answer(model: Path, prompt: str, max_tokens: int, simd_level: int) -> tuple[str, list[int], int]:
    """The greedy answer of pocketlm's C engine here (through the Python API), at that SIMD level, with the
    conversation's token ids and how many of them are the prompt."""
    from .kernels.native import lib
    from .tasks import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions

    prev = lib.plm_set_simd(simd_level)
    try:
        opts = LlmInferenceOptions.builder().setModelPath(str(model)).setMaxTokens(max_tokens).build()
        with LlmInference.createFromOptions(None, opts) as llm:
            s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())
            s.addQueryChunk(prompt)
            text = s.generateResponse()
            return text, list(s._session.tokens), s.last_stats.prefill_tokens
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
