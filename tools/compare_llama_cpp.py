#!/usr/bin/env python3
"""pocketlm next to llama.cpp (through llama-cpp-python, built from source)
on the built-in SmolLM2-135M-Instruct GGUF file: tokenization, greedy tokens
on a few dozen varied prompts, and perplexity on a public-domain text
(tools/data/gettysburg.txt, the Gettysburg Address).

    pip install llama-cpp-python && python tools/compare_llama_cpp.py [--tokens 32]

Greedy continuations are compared two ways. Free-running: each side
continues its own text, and a continuation counts only if identical to the
end. Teacher-forced: pocketlm reads llama.cpp's continuation and, at every
step, its top token is compared with the one llama.cpp chose, and the KL
divergence of the two next-token distributions is averaged (the "same top"
and KLD statistics llama.cpp's perplexity tool reports for quantized
models). The second is what measures the two runtimes against each other:
with 8-bit activations, the last-bit differences of any two kernel sets
(float summation order; llama.cpp's build here uses AVX-512, pocketlm AVX2)
occasionally round an activation the other way, that shifts later logits by
~0.1, and once a near-tie flips, the two texts go separate ways.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from pocketlm.builtin import CHATML, default_model_path  # noqa: E402
from pocketlm.model.forward import KVCache  # noqa: E402
from pocketlm.model.loader import load_model  # noqa: E402

PROMPTS = [
    "What is the capital of France?", "Write a haiku about the sea.", "Explain photosynthesis in one sentence.",
    "List three prime numbers.", "Translate 'good morning' into Spanish.", "What is 12 times 7?",
    "Who wrote Romeo and Juliet?", "Give me a tip for learning to code.", "Describe a cat in five words.",
    "What does a CPU do?", "Name a planet bigger than Earth.", "How do I boil an egg?",
    "Tell me a fun fact about octopuses.", "What is the opposite of 'ancient'?", "Summarize the plot of Cinderella.",
    "Why is the sky blue?", "Write a Python function that adds two numbers.", "What is the boiling point of water?",
    "Suggest a name for a pet turtle.", "What is machine learning?", "How many days are in a leap year?",
    "What's a good breakfast?", "Say hello in French.", "What is the largest ocean?",
]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def ours_greedy(model, tok, ids, n):
    cache = KVCache(model.cfg, len(ids) + n + 1)
    logits, out = model.forward(ids, cache), []
    for _ in range(n):
        t = int(np.argmax(logits[-1]))
        out.append(t)
        if t in tok.eos_ids:
            break
        logits = model.forward([t], cache)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    import llama_cpp

    path = default_model_path()
    model, tok, _ = load_model(path)
    # F32 KV cache, as pocketlm keeps it (llama.cpp defaults to F16, which alone flips near-tied greedy steps)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_threads=2, logits_all=True, verbose=False,
                          type_k=0, type_v=0)

    same_tok = total_prompts = 0
    match_tokens = total_tokens = identical = 0
    forced_same = forced_total = 0
    kls = []
    # the same statistics for llama.cpp against itself with its default F16 KV cache: the scale of a
    # difference that llama.cpp's own settings make
    llm16 = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_threads=2, logits_all=True, verbose=False)
    base_same, base_kls = 0, []
    base_identical = base_match = base_total = 0
    for p in PROMPTS:
        text = CHATML.format(prompt=p)
        ids = tok.encode(text)
        ref_ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        total_prompts += 1
        same_tok += ids == ref_ids
        ours = ours_greedy(model, tok, ids, args.tokens)
        llm.reset()
        theirs = []
        for t in llm.generate(ref_ids, top_k=1, temp=0.0, reset=True):
            theirs.append(int(t))
            if t in tok.eos_ids or len(theirs) >= len(ours):
                break
        n = min(len(ours), len(theirs))
        first_diff = next((i for i in range(n) if ours[i] != theirs[i]), n)
        match_tokens += first_diff
        total_tokens += n
        identical += ours[:n] == theirs[:n]
        theirs16 = []
        for t in llm16.generate(ref_ids, top_k=1, temp=0.0, reset=True):
            theirs16.append(int(t))
            if t in tok.eos_ids or len(theirs16) >= args.tokens:
                break
        n16 = min(len(theirs16), len(theirs))
        base_identical += theirs16[:n16] == theirs[:n16]
        base_match += next((i for i in range(n16) if theirs16[i] != theirs[i]), n16)
        base_total += n16
        # teacher-forced: pocketlm reads prompt + llama.cpp's tokens
        seq = ids + theirs
        lg = model.forward(seq, KVCache(model.cfg, len(seq)))[len(ids) - 1 : len(seq) - 1]
        llm.reset()
        llm.eval(seq)
        ref = np.array(llm.scores[len(ids) - 1 : len(seq) - 1], dtype=np.float64)
        forced_same += int((lg.argmax(-1) == np.array(theirs)).sum())
        forced_total += len(theirs)
        p, q = _log_softmax(ref), _log_softmax(lg.astype(np.float64))
        kls.extend((np.exp(p) * (p - q)).sum(-1))
        llm16.reset()
        llm16.eval(seq)
        r16 = np.array(llm16.scores[len(ids) - 1 : len(seq) - 1], dtype=np.float64)
        base_same += int((r16.argmax(-1) == np.array(theirs)).sum())
        q16 = _log_softmax(r16)
        base_kls.extend((np.exp(p) * (p - q16)).sum(-1))
    print(f"tokenization: {same_tok}/{total_prompts} prompts give identical ids")
    print(f"greedy, free-running: {identical}/{total_prompts} continuations identical; {match_tokens}/{total_tokens} "
          f"tokens ({match_tokens / max(total_tokens, 1):.1%}) before the first difference")
    print(f"  for scale, llama.cpp with its default F16 KV cache against llama.cpp: {base_identical}/{total_prompts} "
          f"identical; {base_match}/{base_total} tokens ({base_match / max(base_total, 1):.1%}) before the first "
          f"difference")
    print(f"greedy, teacher-forced on llama.cpp's continuations: same top token at {forced_same}/{forced_total} "
          f"steps ({forced_same / max(forced_total, 1):.2%}); mean KL(llama.cpp || pocketlm) "
          f"{np.mean(kls):.5f} nats")
    print(f"  for scale, llama.cpp with its default F16 KV cache on the same steps: same top token "
          f"{base_same / max(forced_total, 1):.2%}, mean KL {np.mean(base_kls):.5f} nats")

    text = (HERE / "data" / "gettysburg.txt").read_text()
    ids = [tok.bos_id or 1] + tok.encode(text)
    logits = model.forward(ids, KVCache(model.cfg, len(ids)))
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.mean([logp[i, ids[i + 1]] for i in range(len(ids) - 1)])
    llm.reset()
    llm.eval(ids)
    ref = np.array(llm.scores[: len(ids)], dtype=np.float64)
    ref -= ref.max(-1, keepdims=True)
    ref -= np.log(np.exp(ref).sum(-1, keepdims=True))
    ref_nll = -np.mean([ref[i, ids[i + 1]] for i in range(len(ids) - 1)])
    print(f"perplexity on the Gettysburg Address ({len(ids)} tokens): pocketlm {math.exp(nll):.3f}, "
          f"llama.cpp {math.exp(ref_nll):.3f}")


if __name__ == "__main__":
    main()
