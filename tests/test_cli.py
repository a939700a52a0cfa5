"""The command line's convert and bundle."""

from pocketlm.cli import main
from pocketlm.model.loader import load_model
from tests.fixtures import checkpoints
from tests.fixtures.tokenizers import train_sentencepiece


def test_convert_then_bundle(tmp_path, capsys):
    folder = checkpoints.gemma(tmp_path / "ckpt")
    train_sentencepiece(folder)
    assert main(["convert", "--input-ckpt", str(folder), "--model-type", "GEMMA_2B", "--output-dir",
                 str(tmp_path / "out"), "--quantize", "--feedforward-quant-bits", "4"]) == 0
    assert "wrote" in capsys.readouterr().out
    model_file = tmp_path / "out" / "model.gguf"
    assert main(["bundle", "--model", str(model_file), "--tokenizer", str(folder / "tokenizer.model"),
                 "--start-token", "<s>", "--stop-token", "</s>", "--output", str(tmp_path / "m.task")]) == 0
    model, tok, meta = load_model(tmp_path / "m.task")
    assert model.w["blk.0.ffn_up.weight"].qtype == "Q4_0" and meta["stop_tokens"] == ["</s>"]


def test_errors_are_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["convert", "--input-ckpt", str(tmp_path / "nothing"), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pocketlm convert: error:") and "Traceback" not in err
