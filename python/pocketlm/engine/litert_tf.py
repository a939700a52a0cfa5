"""The whole-generation engine: a .tflite whose one signature takes the
prompt as a string and answers the text (model/tflite_generation.py), run
by TensorFlow's own TFLite interpreter, whose Flex delegate executes the
graph's select TF ops (tensorflow_text registers its TF Text ops first).
Nothing of pocketlm's runs between the prompt and the text: the graph
tokenizes, generates with the sampler baked into it and detokenizes. So
what the API asks that the graph does not do is refused by name: a sampler
other than the graph's, a maxTokens other than its generation length, LoRA,
a device budget. A session holds its conversation as text and sends all of
it on every turn; the answer arrives as one piece, when the graph is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import ModelFileError
from ..model.tflite_generation import WholeGenerationGraph
from ..sampling import Sampler
from .base import GenerationStats, PromptTooLongError, Session

TF_EXTRA = "pip install 'pocketlm[litert-tf]'"
TF_PACKAGES = "TensorFlow 2.19 (tensorflow or tensorflow-cpu) and tensorflow-text 2.19"
# TensorFlow 2.20 and later no longer link the Flex delegate into tf.lite.Interpreter
TF_WITH_FLEX = "2.19"


def _import_tensorflow(graph: WholeGenerationGraph):
    """tensorflow, with tensorflow_text imported first when the graph holds TF Text ops (importing it
    registers them with TensorFlow's kernels, where the Flex delegate finds them)."""
    where = f"{graph.path}: signature {graph.signature} (text in, text out, select TF ops)"
    if graph.tf_text_ops:
        try:
            import tensorflow_text  # noqa: F401
        except ImportError as e:
            raise ModelFileError(f"{where} runs on TensorFlow's TFLite interpreter with TensorFlow Text's ops "
                                 f"({', '.join(graph.tf_text_ops)}), which need {TF_PACKAGES}: {TF_EXTRA} "
                                 f"(import failed: {e})") from None
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ModelFileError(f"{where} runs on TensorFlow's TFLite interpreter with its Flex delegate, which needs "
                             f"{TF_PACKAGES}: {TF_EXTRA} (import failed: {e})") from None
    return tf


def open_interpreter(graph: WholeGenerationGraph):
    """(tf.lite.Interpreter over the file, its signature runner), tensors allocated, so a TensorFlow without
    the Flex delegate is refused here, before any prompt."""
    import warnings

    tf = _import_tensorflow(graph)
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": it is the one that runs Flex ops
        warnings.simplefilter("ignore")
        it = tf.lite.Interpreter(model_path=graph.path)
    try:
        it.allocate_tensors()
    except RuntimeError as e:
        if "Select TensorFlow op" in str(e) or "Flex" in str(e):
            raise ModelFileError(f"{graph.path}: TensorFlow {tf.__version__}'s tf.lite.Interpreter has no Flex "
                                 f"delegate for the graph's select TF ops (TensorFlow 2.20 and later no longer "
                                 f"link it); they run with {TF_PACKAGES} ({TF_EXTRA})") from None
        raise ModelFileError(f"{graph.path}: TensorFlow {tf.__version__}'s interpreter cannot allocate signature "
                             f"{graph.signature}: {e}") from None
    return it, it.get_signature_runner(graph.signature)


class _NoTokenizer:
    """Stands for the tokenizer a whole-generation graph keeps inside: counting tokens is refused by name."""

    bos_id, add_bos, eos_ids, chat_template = None, False, (), None

    def __init__(self, path: str):
        self.path = path

    def encode(self, text: str) -> list[int]:
        raise ValueError(f"{self.path}: the graph tokenizes inside its whole-generation signature, so pocketlm has "
                         "no tokenizer to count tokens with (sizeInTokens); name the model's tokenizer file "
                         "(--tokenizer, or createFromOptions(..., tokenizer=...))")

    def special_id(self, text: str):
        return None


def setup(engine, graph: WholeGenerationGraph, max_tokens: int, backend, engine_name: str | None, device) -> None:
    """Fills in an Engine for a whole-generation graph (Engine.__init__ calls it in place of its own set-up)."""
    if backend is not None or (engine_name or "").strip().lower() not in ("", "litert"):
        raise ValueError(f"{graph.path}: a whole-generation graph runs on TensorFlow's TFLite interpreter, not on "
                         f"pocketlm's {engine_name or 'kernel backend'} engine")
    if device is not None:
        raise ValueError(f"{graph.path}: a device context is not modelled for a whole-generation graph on "
                         "TensorFlow's interpreter (its memory and threads are TensorFlow's); run it without one")
    if max_tokens != graph.length:
        raise ValueError(f"{graph.path}: maxTokens {max_tokens}, but signature {graph.signature} always generates "
                         f"up to the {graph.length} positions of its generation loop (prompt included), fixed in "
                         f"the graph; use maxTokens {graph.length}")
    engine.interpreter, engine.runner = open_interpreter(graph)
    engine.kind, engine.kv_type = "litert-tf", "F32"
    if engine.tokenizer is None:
        engine.tokenizer = _NoTokenizer(graph.path)
    engine.native = None
    engine.template_family = engine.text_path_note = None
    engine.notes = [f"{graph.path}: one {graph.signature} call generates the whole answer ({graph.sampler}, up to "
                    f"{graph.length} positions); it arrives as one piece when the graph is done"]
    engine._session_class = WholeGenerationSession
    engine.supported_lora_ranks, engine._adapters = (), {}
    engine.busy, engine.running = threading.Lock(), None
    engine.bos_id, engine.add_bos = None, False
    engine.templates = None  # the graph's own text goes in as it is; session templates are added as text
    engine.stop_ids, engine.stop_sequences = set(), []


def check_sampler(graph: WholeGenerationGraph, sampler) -> None:
    """The session's sampler is the graph's: greedy for a greedy graph (topK 1 or temperature 0; topP and the
    seed then change nothing); a graph that samples at random does so with settings pocketlm cannot see."""
    if graph.sampler == "greedy":
        if not sampler.greedy:
            raise ValueError(f"{graph.path}: signature {graph.signature} samples greedily inside the graph "
                             f"({', '.join(graph.sampler_ops)}); topK {sampler.top_k} with temperature "
                             f"{sampler.temperature:g} cannot be applied: use topK 1 or temperature 0")
        return
    raise ValueError(f"{graph.path}: signature {graph.signature} samples inside the graph with its own random "
                     f"sampler ({', '.join(graph.sampler_ops)}); its topK, topP, temperature and seed are fixed "
                     f"there, so topK {sampler.top_k}, topP {sampler.top_p:g}, temperature "
                     f"{sampler.temperature:g} and randomSeed {sampler.seed} cannot be applied")


class WholeGenerationSession(Session):
    """A conversation with a whole-generation graph: its text so far, sent whole on every turn (the graph
    keeps no cache between calls), the graph's answer being everything it writes after that text."""

    def __post_init__(self):
        graph = self.engine.model
        if self.lora is not None:
            raise ValueError(f"{graph.path}: LoRA adapters do not apply to a whole-generation graph (its weights "
                             "are constants inside its signature)")
        check_sampler(graph, self.sampler)
        self.text = ""  # the conversation the graph has answered, its answers included
        self.pending_text = ""  # added since
        self.released = False

    @property
    def n_tokens(self) -> int:
        return len(self.engine.tokenizer.encode(self.text + self.pending_text))

    def add_query_chunk(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"a query chunk is text, not {type(text).__name__}")
        t, opening = self.templates, ""
        if not self.in_user_turn and t is not None:
            opening = (t.model_suffix if self.turns else t.preamble) + t.user_prefix
            if self.turns == 0 and t.user_prefix.strip() and t.user_prefix.strip() in text:
                opening, self.formatted = "", True
        self.pending_text += opening + text
        self.in_user_turn = True

    def generate(self, on_text: Callable[[str], None], cancelled: threading.Event | None = None) -> str:
        if not self.in_user_turn:
            raise ValueError("add a query chunk before generating a response")
        graph, t = self.engine.model, self.templates
        if t is not None and not self.formatted:
            self.pending_text += t.user_suffix + t.model_prefix
        self.in_user_turn = self.formatted = False
        prompt = self.text + self.pending_text
        stats = self.last_stats = GenerationStats()
        if cancelled is not None and cancelled.is_set():  # before the graph runs; once it runs it runs whole
            stats.stop_reason = "cancelled"
            self.pending_text = ""
            return ""
        import numpy as np

        t0 = time.perf_counter()
        out = self.engine.runner(**{graph.input: np.array(prompt.encode("utf-8"))})[graph.output]
        elapsed = time.perf_counter() - t0
        raw = np.asarray(out).reshape(-1)[0]
        try:
            written = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError as e:
            raise ModelFileError(f"{graph.path}: signature {graph.signature} answered bytes that are not UTF-8 "
                                 f"({e})") from None
        if not written.startswith(prompt):
            self.pending_text = ""  # the turn is dropped: the session holds what it held before it
            raise PromptTooLongError(f"{graph.path}: signature {graph.signature}'s text does not begin with the "
                                     f"prompt ({len(prompt)} characters): the graph cut it to its {graph.length} "
                                     "positions; shorten the prompt (or the conversation)")
        answer = written[len(prompt):]
        self.text, self.pending_text = written, ""
        self.turns += 1
        stats.decode_s = stats.time_to_first_token_s = elapsed
        stats.stop_reason = "whole generation"
        if not isinstance(self.engine.tokenizer, _NoTokenizer):
            tok = self.engine.tokenizer
            stats.prefill_tokens, stats.decode_tokens = len(tok.encode(prompt)), len(tok.encode(answer))
        if answer:
            on_text(answer)
        return answer

    def clone(self) -> WholeGenerationSession:
        s = self.sampler
        other = WholeGenerationSession(self.engine, Sampler(s.top_k, s.top_p, s.temperature, s.seed), self.templates,
                                       self.lora)
        other.text, other.pending_text, other.turns = self.text, self.pending_text, self.turns
        other.in_user_turn, other.formatted = self.in_user_turn, self.formatted
        other.sampler.rng.bit_generator.state = s.rng.bit_generator.state
        return other

    def release(self) -> None:
        self.released = True
