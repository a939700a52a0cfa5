#!/usr/bin/env python3
"""pocketlm next to llama.cpp (through llama-cpp-python, built from source)
on the built-in SmolLM2-135M-Instruct GGUF file: tokenization, greedy tokens
on a few dozen varied prompts, and perplexity on a public-domain text
(tools/data/gettysburg.txt, the Gettysburg Address).

    pip install llama-cpp-python && python tools/compare_llama_cpp.py [--tokens 32]
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
    print(f"tokenization: {same_tok}/{total_prompts} prompts give identical ids")
    print(f"greedy: {identical}/{total_prompts} continuations identical; {match_tokens}/{total_tokens} tokens "
          f"({match_tokens / max(total_tokens, 1):.1%}) before the first difference")

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
