"""pocketlm port-check's parts that run on any machine: the NumPy reference
cases and the C program that checks the kernels against them (here on x86,
under qemu by port-check), the ELF report's checks, which must fail on a
library that is not an arm64 one with 16 KiB pages, and the logits
comparison: its arithmetic (KL, agreement, near-ties) on made-up logits, and
the C program that dumps teacher-forced logits, here on x86 against the
Python native engine."""

import contextlib
import io
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
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


# ---- the logits comparison (step 5) -------------------------------------------------------------


def test_kl_divergence_is_kl_of_the_first_against_the_second_in_nats():
    p = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    q = np.log(np.array([[0.9, 0.1], [0.9, 0.1]])) + 7.0  # a common shift of the logits changes nothing
    want = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    np.testing.assert_allclose(pc.kl_divergence(p, q), [want, 0.0], atol=1e-12)
    # the other direction differs: x86 || arm is the one reported
    back = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    np.testing.assert_allclose(pc.kl_divergence(q, p)[0], back, atol=1e-12)
    big = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)  # no overflow on large logits
    assert np.isfinite(pc.kl_divergence(big, big[:, ::-1])).all()


def test_top2_gap_and_near_ties_look_at_the_first_answer_tokens():
    V, n_prompt = 6, 4
    ref = np.zeros((9, V), dtype=np.float32)
    ref[:, 0] = 5.0  # a clear winner everywhere...
    ref[n_prompt - 1, 3] = 4.7  # ...but answer token 1 (picked after the prompt's last id) is a near-tie
    ref[n_prompt, 0], ref[n_prompt, 2] = 2.0, 9.0  # token 2: clear, and not id 0
    ref[n_prompt + 1, 5] = 4.55  # token 3: a near-tie, gap 0.45
    ref[n_prompt + 2, 4] = 4.99  # token 4: past FIRST_TOKENS, not flagged
    ref[n_prompt - 2, 1] = 5.0  # a tie inside the prompt is not an answer token
    np.testing.assert_allclose(pc.top2_gap(ref)[n_prompt - 1:n_prompt + 2], [0.3, 7.0, 0.45], atol=1e-5)
    ties = pc.near_ties(ref, n_prompt)
    assert [(k, a, b) for k, _, a, b in ties] == [(1, 0, 3), (3, 0, 5)]
    np.testing.assert_allclose([g for _, g, _, _ in ties], [0.3, 0.45], atol=1e-5)
    assert pc.near_ties(ref, n_prompt, margin=0.35)[0][0] == 1 and len(pc.near_ties(ref, n_prompt, margin=0.35)) == 1
    assert [k for k, *_ in pc.near_ties(ref[:n_prompt + 1], n_prompt)] == [1]  # a short answer: what there is


def test_compare_logits_counts_agreement_on_clear_positions_and_the_largest_difference():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((10, 50)).astype(np.float32)
    ref[:, 7] = 10.0  # top-1 is id 7, gap >= 6 on every position...
    ref[2, 8] = 9.9  # ...but position 2 is a near-tie
    got = ref.copy()
    got[2, 8] = 10.2  # flips the near-tie
    got[5, 9] = 11.0  # flips a clear position
    got[6, 3] += 0.25
    a = pc.compare_logits([ref[:4], ref[4:]], [got[:4], got[4:]])
    assert a.positions == 10 and a.n_clear == 9
    assert a.top1 == pytest.approx(0.8) and a.top1_clear == pytest.approx(8 / 9)
    want_kl = pc.kl_divergence(ref, got)
    assert a.mean_kl == pytest.approx(want_kl.mean()) and a.max_kl == pytest.approx(want_kl.max())
    assert a.max_kl == pytest.approx(want_kl[5]) and want_kl[[0, 1, 3, 4, 7, 8, 9]].max() == 0
    d5 = 11.0 - ref[5, 9]
    assert a.max_abs == pytest.approx(d5, rel=1e-6)
    assert a.max_rel == pytest.approx(d5 / (ref[5].max() - ref[5].min()), rel=1e-6)
    assert not a.bit_exact and pc.compare_logits([ref], [ref.copy()]).bit_exact
    with pytest.raises(ValueError):
        pc.compare_logits([ref], [got[:5]])


def test_agreement_fails_only_beyond_rounding():
    rounding = pc.Agreement(positions=100, top1=0.97, n_clear=80, top1_clear=1.0, mean_kl=0.004, max_kl=0.04,
                            max_abs=2.0, max_rel=0.05)
    assert pc.agreement_failures(rounding) == []
    assert pc.agreement_failures(pc.Agreement(positions=100, top1=0.5, n_clear=0, mean_kl=0.01, max_kl=0.1)) == []
    low = pc.agreement_failures(pc.Agreement(positions=100, n_clear=80, top1_clear=0.85, mean_kl=0.004, max_kl=0.04))
    assert len(low) == 1 and "85.0%" in low[0]
    assert "mean KL" in pc.agreement_failures(pc.Agreement(positions=10, n_clear=1, top1_clear=1.0, mean_kl=0.2,
                                                           max_kl=0.5))[0]
    assert "max KL" in pc.agreement_failures(pc.Agreement(positions=10, n_clear=1, top1_clear=1.0, mean_kl=0.01,
                                                          max_kl=3.0))[0]
    assert pc.agreement_failures(pc.Agreement(positions=10, n_clear=1, top1_clear=1.0, mean_kl=float("nan"),
                                              max_kl=0.0))  # NaN logits are no pass
    assert pc.agreement_failures(pc.Agreement()) == ["no positions compared"]


def test_chunks_follow_a_generation_then_batch_the_rest():
    assert pc.chunk_sizes(30, 50) == [30, 1, 1, 18]
    assert pc.chunk_sizes(30, 31) == [30, 1]
    assert pc.chunk_sizes(30, 30) == [30]
    assert pc.chunk_sizes(30, 40, decode_steps=0) == [30, 10]


def test_prompts_files_are_json_lists_or_lines(tmp_path):
    (tmp_path / "p.json").write_text(' ["What is 2+2?", "line one\\nline two"]')
    assert pc.load_prompts(tmp_path / "p.json") == ["What is 2+2?", "line one\nline two"]
    (tmp_path / "p.txt").write_text("first prompt\n\n  second, [not json]\n")
    assert pc.load_prompts(tmp_path / "p.txt") == ["first prompt", "  second, [not json]"]
    for bad in ("[1, 2]", "[]", "\n\n"):
        (tmp_path / "bad").write_text(bad)
        with pytest.raises(ValueError):
            pc.load_prompts(tmp_path / "bad")


def test_logits_dump_gives_the_native_engines_teacher_forced_logits(tmp_path):
    """tests/c/logits_dump.c (the program port-check runs under qemu), built here, against the
    Python native engine over the same chunks, on a tiny llama.cpp model."""
    if CC is None:
        pytest.skip("no C compiler")
    from pocketlm.engine.native import NativeModel

    exe = tmp_path / "logits_dump"
    subprocess.run([CC, "-O2", "-Wall", "-Werror", str(ROOT / "tests" / "c" / "logits_dump.c"),
                    f"-I{ROOT / 'native' / 'include'}", "-o", str(exe), *_config("--libs")], check=True)
    model = ROOT / "tests" / "fixtures" / "llama_cpp" / "llama.gguf"
    nm = NativeModel.open(model)
    rng = np.random.default_rng(1)
    seqs = [pc.TokenSequence("a", rng.integers(0, nm.vocab_size, 11).tolist(), 6, pc.chunk_sizes(6, 11)),
            pc.TokenSequence("b", rng.integers(0, nm.vocab_size, 3).tolist(), 3, [3])]
    tokens, out = tmp_path / "seq.bin", tmp_path / "logits.bin"
    pc.write_token_file(tokens, seqs)
    p = subprocess.run([str(exe), str(model), "0", "0", str(tokens), str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "14 positions" in p.stdout
    got = list(pc.read_logits(out))
    assert [g.shape for g in got] == [(11, nm.vocab_size), (3, nm.vocab_size)]
    for s, g in zip(seqs, got):
        want = pc.teacher_forced_logits(nm, s)
        np.testing.assert_allclose(g, want, rtol=0, atol=1e-5)
        assert np.ptp(want) > 0.1  # real logits, not zeros
    tokens.write_bytes(tokens.read_bytes()[:-4])
    p = subprocess.run([str(exe), str(model), "0", "0", str(tokens), str(out)], capture_output=True, text=True)
    assert p.returncode != 0 and "truncated" in p.stderr


def test_the_cli_hands_port_check_the_model_and_the_prompts_file(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(pc, "port_check", lambda target, out, jobs, model, prompts=None: seen.update(
        target=target, model=model, prompts=prompts) or 0)
    (tmp_path / "prompts.json").write_text('["one", "two"]')
    assert main(["port-check", "--out", str(tmp_path), "--model", "m.gguf", "--prompts",
                 str(tmp_path / "prompts.json")]) == 0
    assert seen == dict(target="aarch64", model="m.gguf", prompts=["one", "two"])
    assert main(["port-check", "--out", str(tmp_path)]) == 0 and seen["prompts"] is None


def test_two_greedy_answers_are_said_to_part_where_they_part():
    from pocketlm.builtin import default_model_path
    from pocketlm.engine.base import Engine
    from pocketlm.model.forward import KVCache

    model = default_model_path()
    want, ids, n_prompt = pc._x86_answer(model, "Name the capital of France.", 48, 2)
    assert want == "The capital of France is Paris." and len(ids) > n_prompt
    engine = Engine(str(model), 64)
    answer = ids[n_prompt:]
    for k in (1, 3):  # the arm64 answer keeps x86's first k tokens, then says something else
        kept = engine.tokenizer.decode(answer[:k]).lstrip()
        gap, at = pc._parting_gap(model, ids, n_prompt, want, kept + "\x01")
        assert at == k
        logits = engine.model.forward(ids[: n_prompt + k], KVCache(engine.model.cfg, n_prompt + k), last_only=True)
        assert gap == pytest.approx(float(pc.top2_gap(logits[0])))
    engine.close()
    assert pc._parting_gap(model, ids, n_prompt, want, want + " more") == (None, len(answer))
