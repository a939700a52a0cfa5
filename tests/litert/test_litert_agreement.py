"""pocketlm's own engine on the source checkpoint of llama-tiny-int8.litertlm
(rebuilt by tests/fixtures/litert.py, converted to Q8_0 by pocketlm's
converter) and LiteRT on the int8 file itself (litert-torch's
dynamic_wi8_afp32: int8 per-channel weights, float activations) predict the
same next token, teacher-forced over a 200-token sequence: the two int8
schemes differ, so the logits do, but the argmax should rarely."""

from __future__ import annotations

import numpy as np
import pytest

from pocketlm.engine.base import DEFAULT_KV_TYPE
from pocketlm.engine.litert import open_graph
from pocketlm.engine.native import NativeModel, NativeTokens
from pocketlm.genai.converter import ConversionConfig, convert_checkpoint
from pocketlm.model.loader import load_model
from tests.fixtures import litert as fx

pytest.importorskip("litert_lm", reason="the LiteRT runtime (pip install pocketlm[litert])")
LITERTLM = fx.FOLDER / "llama-tiny-int8.litertlm"
N = 200  # positions compared (the graph's cache holds 256)
MIN_AGREEMENT = 0.90


@pytest.fixture(scope="module")
def q8_0(tmp_path_factory):
    """The source checkpoint, converted to Q8_0 GGUF (every matrix, the embedding and classifier included)."""
    tmp = tmp_path_factory.mktemp("litert-source")
    ckpt = fx.sp_checkpoint(tmp / "checkpoint")
    # the same tokenizer as the file's: the checkpoint rebuilt is the one exported
    graph, tok, _ = load_model(LITERTLM)
    assert tok.origin[1] == (ckpt / "tokenizer.model").read_bytes(), "the rebuilt checkpoint is not the file's source"
    path = convert_checkpoint(ConversionConfig(input_ckpt=str(ckpt), ckpt_format="safetensors", model_type=None,
                                               backend="cpu", output_dir=str(tmp / "q8_0")))
    model, _, _ = load_model(path)
    assert {w.qtype for n, w in model.w.items() if n.startswith("blk.") and hasattr(w, "qtype")} == {"Q8_0"}
    return model, tok, graph


def test_pocketlms_q8_0_and_litert_int8_agree_on_the_next_token(q8_0):
    model, tok, graph = q8_0
    native = NativeModel.open(*model.source, cfg=model.cfg)
    # a prompt, then the Q8_0 model's greedy continuation to N tokens
    seq = [tok.bos_id] + tok.encode(fx.PROMPTS[1])
    n_prompt = len(seq)
    t = NativeTokens(native, N, DEFAULT_KV_TYPE)
    logits = t.eval(seq)
    while len(seq) < N:
        seq.append(int(np.argmax(logits)))
        logits = t.eval(seq[-1:])
    assert n_prompt < N // 2 and len(set(seq[n_prompt:])) > 10  # not one token repeated

    ours = NativeTokens(native, N, DEFAULT_KV_TYPE).eval(seq, all_logits=True)
    # LiteRT: every position's logits from decode, token by token (plm_forward's all-logits path)
    theirs = NativeTokens(open_graph(graph, fx.CACHE_LENGTH), fx.CACHE_LENGTH, "F32").eval(seq, all_logits=True)
    assert ours.shape == theirs.shape == (N, graph.vocab_size)
    same = np.argmax(ours, axis=1) == np.argmax(theirs, axis=1)
    agreement, on_prompt = same.mean(), same[:n_prompt].mean()
    msg = (f"teacher-forced top-1 agreement {agreement:.1%} over {N} positions ({on_prompt:.1%} over the "
           f"{n_prompt}-token prompt, {same[n_prompt:].mean():.1%} over the greedy continuation); "
           f"largest logit difference {np.abs(ours - theirs).max():.3f}")
    print(msg)
    assert agreement >= MIN_AGREEMENT, msg
