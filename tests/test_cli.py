"""The command line's convert, bundle and config."""

import contextlib
import io
import os
import shutil
import subprocess

import pytest

from pocketlm.cli import main
from pocketlm.model.loader import load_model
from tests.fixtures import checkpoints
from tests.fixtures.tokenizers import train_sentencepiece


def test_convert_then_bundle(tmp_path, capsys):
    folder = checkpoints.gemma(tmp_path / "ckpt")
    train_sentencepiece(folder)
    assert main(["convert", "--input-ckpt", str(folder), "--model-type", "GEMMA_2B", "--output-dir",
                 str(tmp_path / "out"), "--feedforward-quant-bits", "4"]) == 0
    assert "wrote" in capsys.readouterr().out
    model_file = tmp_path / "out" / "model.tflite"
    assert main(["bundle", "--model", str(model_file), "--tokenizer", str(folder / "tokenizer.model"),
                 "--start-token", "<s>", "--stop-token", "</s>", "--output", str(tmp_path / "m.task")]) == 0
    model, tok, meta = load_model(tmp_path / "m.task")
    assert model.w["blk.0.ffn_up.weight"].qtype == "Q4_0" and meta["stop_tokens"] == ["</s>"]


def test_errors_are_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["convert", "--input-ckpt", str(tmp_path / "nothing"), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pocketlm convert: error:") and "Traceback" not in err


def test_generate_chat_and_info_on_a_model(tmp_path, capsys, monkeypatch):
    import io

    from tests.fixtures.tokenizers import train_byte_level_bpe

    folder = checkpoints.llama(tmp_path / "ckpt", vocab_size=320, eos_token_id=0)
    train_byte_level_bpe(folder, vocab_size=320)
    assert main(["generate", "--model", str(folder), "--max-tokens", "24", "--top-k", "1", "the phone"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() and "prefill" in err and "decode" in err and "tok/s" in err

    monkeypatch.setattr("sys.stdin", io.StringIO("hello\nand more\n"))
    assert main(["chat", "--model", str(folder), "--max-tokens", "64", "--top-k", "1"]) == 0
    out, err = capsys.readouterr()
    assert err.count("tok/s") >= 2  # a stats line after each turn (or an error for the full context)

    assert main(["info", str(folder), "--stats"]) == 0
    out = capsys.readouterr().out
    for field in ("architecture", "parameters", "weights", "context length", "tokenizer", "decode"):
        assert field in out
    assert "llama: 2 layers" in out and "F32 100%" in out


def test_generation_errors_are_one_line(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "missing.gguf"), "x"]) == 2
    assert "modelPath" in capsys.readouterr().err


def test_config_flags_build_a_c_program_that_runs_without_ld_library_path(tmp_path):
    pytest.importorskip("pocketlm.kernels.native", exc_type=ImportError)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["config", "--cflags", "--libs"]) == 0
    flags = buf.getvalue().split()
    src = tmp_path / "v.c"
    src.write_text('#include "pocketlm.h"\n#include <stdio.h>\n'
                   'int main(void) { printf("%s %d\\n", plm_version(), (int)plm_type_block_size(PLM_TYPE_Q8_0)); '
                   'return 0; }\n')
    exe = tmp_path / "v"
    subprocess.run([cc, str(src), "-o", str(exe), *flags], check=True)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = subprocess.run([str(exe)], capture_output=True, text=True, env=env, check=True).stdout.split()
    assert out[1] == "32" and out[0]
    assert main(["config"]) == 2  # nothing asked for
