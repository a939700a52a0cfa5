#!/usr/bin/env python3
"""Holds pocketlm's speed estimator against published on-device figures.

For each published result (phone, model, weight type, model size, decode and
prefill tokens/s, source) the traffic of one decode step is the model's
weights read once (the published file size) plus its KV cache at a short
context, and 2 x parameters flops; a prefill is the weights once per batch
and 2 x parameters flops a token. estimate() turns that into tokens/s on the
profile; the ratio estimate / published is printed. docs/devices.md holds
the table this prints.
"""

from pocketlm.device import estimate, load_profile
from pocketlm.engine.base import GenerationStats
from pocketlm.model.forward import TrafficCounters

# (profile, model, weights, params (B), size (MB), decode tok/s, prefill tok/s or None, source)
PUBLISHED = [
    ("galaxy_s24_ultra", "Gemma3-1B (LiteRT-LM, CPU, 4 threads)", "int4", 1.0, 554, 55.9, 379.7,
     "https://github.com/google-ai-edge/LiteRT-LM (README, performance table)"),
    ("galaxy_s24_ultra", "DeepSeek-R1-Distill-Qwen-1.5B (MediaPipe/LiteRT, CPU, 4 threads)", "int8", 1.78, 1831,
     26.35, 166.5, "https://huggingface.co/litert-community/DeepSeek-R1-Distill-Qwen-1.5B"),
    ("galaxy_s24_ultra", "Llama 3.2 1B SpinQuant (ExecuTorch, OnePlus 12, same SoC)", "int4", 1.24, 1083, 50.2,
     None, "https://github.com/meta-llama/llama-models/blob/main/models/llama3_2/MODEL_CARD.md"),
    ("galaxy_s24_ultra", "Llama 3.2 3B SpinQuant (ExecuTorch, OnePlus 12, same SoC)", "int4", 3.21, 2435, 19.7,
     None, "https://github.com/meta-llama/llama-models/blob/main/models/llama3_2/MODEL_CARD.md"),
    ("galaxy_s24_ultra", "Llama 3.2 1B BF16 (ExecuTorch, OnePlus 12, same SoC)", "bf16", 1.24, 2358, 19.2,
     None, "https://github.com/meta-llama/llama-models/blob/main/models/llama3_2/MODEL_CARD.md"),
]


def stats_for(params_b: float, size_mb: float, prefill_tokens: int = 1024) -> GenerationStats:
    weights, flops = size_mb * 1e6, 2 * params_b * 1e9
    return GenerationStats(prefill_tokens=prefill_tokens,
                           prefill_traffic=TrafficCounters(prefill_tokens, int(weights), 0, int(flops * prefill_tokens)),
                           decode_traffic=TrafficCounters(1, int(weights), 0, int(flops)))


def main() -> None:
    print("| phone | model | weights | published decode | estimate | ratio | published prefill | estimate | ratio | source |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for profile_name, model, wtype, params, size, decode, prefill, source in PUBLISHED:
        p = load_profile(profile_name)
        e = estimate(p, stats_for(params, size), quantized=wtype.startswith("int"))
        pre = (f"{prefill:.0f} | {e.prefill_tokens_per_s:.0f} | {e.prefill_tokens_per_s / prefill:.2f}"
               if prefill else "– | – | –")
        print(f"| {profile_name} | {model} | {wtype}, {size} MB | {decode:.1f} | {e.decode_tokens_per_s:.1f} | "
              f"{e.decode_tokens_per_s / decode:.2f} | {pre} | {source} |")


if __name__ == "__main__":
    main()
