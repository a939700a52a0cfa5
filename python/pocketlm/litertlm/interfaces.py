"""litert_lm's configuration and result classes (Backend, SamplerConfig and
the other configs, ResponseFormat, BenchmarkInfo, Responses, Tool,
ToolEventHandler) and its enums, with its names, fields, defaults and
validation messages. Nothing here runs a model (engine.py does).
"""

from __future__ import annotations

import abc
import collections.abc
import dataclasses
import enum
import json
import logging
from typing import Any

log = logging.getLogger("pocketlm")


class ActivationDataType(enum.IntEnum):
    FLOAT32 = 0
    FLOAT16 = 1
    INT16 = 2
    INT8 = 3


class LiteRtLmBackendType(enum.IntEnum):
    UNSPECIFIED = 0
    CPU = 1
    GPU = 2
    NPU = 3


class LiteRtLmConstraintProviderType(enum.IntEnum):
    NONE = 0
    LL_GUIDANCE = 1


class LiteRtLmModality(enum.IntEnum):
    TEXT = 0
    VISION = 1
    AUDIO = 2
    VIDEO = 3


class LiteRtLmModelType(enum.IntEnum):
    UNKNOWN = 0
    LLM = 1
    EMBEDDING = 2


class LiteRtLmNpuBrand(enum.IntEnum):
    UNKNOWN = 0
    QUALCOMM = 1
    GOOGLE_TENSOR = 2
    MEDIATEK = 3
    INTEL = 4
    SAMSUNG = 5


class LogSeverity(enum.IntEnum):
    VERBOSE = 0
    DEBUG = 1
    INFO = 2
    WARNING = 3
    ERROR = 4
    FATAL = 5
    SILENT = 1000


def set_min_log_severity(severity: LogSeverity) -> None:
    """LiteRT-LM's runtime log level; pocketlm logs through the "pocketlm" logger."""
    levels = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR,
              5: logging.CRITICAL}
    log.setLevel(levels.get(int(severity), logging.CRITICAL + 10))


class Backend(abc.ABC):
    """The hardware a phone runs on. pocketlm simulates the CPU only: GPU and
    NPU are refused by name when an Engine is made."""

    CPU: type[CPU]
    GPU: type[GPU]
    NPU: type[NPU]

    def get_name(self) -> str:
        return type(self).__name__.lower()

    def __eq__(self, other: Any) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return True


@dataclasses.dataclass(frozen=True, kw_only=True)
class CPU(Backend):
    thread_count: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class GPU(Backend):
    gpu_decode_steps_per_sync: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class NPU(Backend):
    litert_dispatch_lib_dir: str | None = None

    def __eq__(self, other: Any) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return self.litert_dispatch_lib_dir == other.litert_dispatch_lib_dir


Backend.CPU, Backend.GPU, Backend.NPU = CPU, GPU, NPU


class ToolEventHandler(abc.ABC):
    """Approves tool calls and may rewrite tool responses before the model sees them."""

    @abc.abstractmethod
    def approve_tool_call(self, tool_call: dict[str, Any]) -> bool:
        """True to run the call, False to skip it."""

    @abc.abstractmethod
    def process_tool_response(self, tool_response: dict[str, Any]) -> dict[str, Any]:
        """The response sent to the model."""


class Tool(abc.ABC):
    """A tool the model may call."""

    @abc.abstractmethod
    def get_tool_description(self) -> dict[str, Any]:
        """The tool as OpenAPI JSON: {"type": "function", "function": {"name", "description", "parameters"}}."""

    @abc.abstractmethod
    def execute(self, param: collections.abc.Mapping[str, Any]) -> Any:
        """Runs the tool with the model's arguments."""


@dataclasses.dataclass
class ThinkingConfig:
    enable_thinking: bool = True
    thinking_token_budget: int = -1


@dataclasses.dataclass
class SamplerConfig:
    """Given to an engine, a field left None becomes top_k 1, top_p 0.95,
    temperature 1.0, seed 0 (LiteRT-LM's TOP_P sampler); no SamplerConfig at
    all takes the model file's sampler parameters."""

    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    seed: int | None = None

    def __post_init__(self):
        if self.top_k is not None and self.top_k <= 0:
            raise ValueError(f"top_k should be positive, but got {self.top_k}.")
        if self.top_p is not None and not (0 <= self.top_p <= 1):
            raise ValueError(f"top_p should between 0 and 1 inclusively, but got {self.top_p}.")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature should be non-negative, but got {self.temperature}.")


@dataclasses.dataclass
class RepetitionPenaltyConfig:
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    window_size: int | None = None

    def __post_init__(self):
        if self.repetition_penalty is not None and self.repetition_penalty < 1.0:
            raise ValueError(f"repetition_penalty should be >= 1.0, but got {self.repetition_penalty}.")
        if self.window_size is not None and self.window_size < 0:
            raise ValueError(f"window_size should be >= 0, but got {self.window_size}.")


@dataclasses.dataclass
class NoRepeatNgramConfig:
    no_repeat_ngram_size: int | None = None
    window_size: int | None = None

    def __post_init__(self):
        if self.no_repeat_ngram_size is not None and self.no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size should be >= 0, but got {self.no_repeat_ngram_size}.")
        if self.window_size is not None and self.window_size < 0:
            raise ValueError(f"window_size should be >= 0, but got {self.window_size}.")


@dataclasses.dataclass
class SuppressTokensConfig:
    suppress_tokens: collections.abc.Collection[int] | None = None

    def __post_init__(self):
        for token_id in self.suppress_tokens or ():
            if token_id < 0:
                raise ValueError(f"Token ID in suppress_tokens should be >= 0, but got {token_id}.")


@dataclasses.dataclass
class LoraRankConfig:
    lora_rank: int | None = None
    audio_lora_rank: int | None = None


@dataclasses.dataclass
class LoraConfig:
    lora_path: str | None = None
    audio_lora_path: str | None = None


@dataclasses.dataclass
class ConstrainedDecodingConfig:
    enable: bool = True
    provider: LiteRtLmConstraintProviderType | None = None


@dataclasses.dataclass
class ResponseFormat:
    """A constraint on a response: a JSON schema or a regular expression."""

    class Type:
        NONE = 0
        REGEX = 1
        JSON_OBJECT = 2

    type: int
    schema_or_pattern: str

    @classmethod
    def json(cls, schema: dict[str, Any] | str) -> ResponseFormat:
        if isinstance(schema, dict):
            schema = json.dumps(schema)
        elif isinstance(schema, str):
            try:
                json.loads(schema)
            except json.JSONDecodeError as e:
                raise ValueError(f"Invalid JSON schema string: {e}") from e
        return cls(type=cls.Type.JSON_OBJECT, schema_or_pattern=schema)

    @classmethod
    def regex(cls, pattern: str) -> ResponseFormat:
        return cls(type=cls.Type.REGEX, schema_or_pattern=pattern)


@dataclasses.dataclass
class BenchmarkInfo:
    init_time_in_second: float
    time_to_first_token_in_second: float
    last_prefill_token_count: int
    last_prefill_tokens_per_second: float
    last_decode_token_count: int
    last_decode_tokens_per_second: float


@dataclasses.dataclass
class Responses:
    texts: list[str] = dataclasses.field(default_factory=list)
    scores: list[float] = dataclasses.field(default_factory=list)
    token_lengths: list[int] = dataclasses.field(default_factory=list)
    token_scores: list[list[float]] = dataclasses.field(default_factory=list)


# -- litert_lm's abstract interfaces ------------------------------------------------------------------------
# pocketlm's Engine, Session, Conversation and Benchmark are registered as their implementations, so code that
# checks isinstance(x, litert_lm.AbstractEngine) or annotates with them runs unchanged.


class AbstractEngine(abc.ABC):
    """litert_lm.interfaces.AbstractEngine."""

    @abc.abstractmethod
    def create_conversation(self, *args, **kwargs): ...

    @abc.abstractmethod
    def create_session(self, *args, **kwargs): ...

    @abc.abstractmethod
    def tokenize(self, text): ...

    @abc.abstractmethod
    def detokenize(self, token_ids): ...

    @property
    @abc.abstractmethod
    def bos_token_id(self): ...

    @property
    @abc.abstractmethod
    def eos_token_ids(self): ...


class AbstractSession(abc.ABC):
    """litert_lm.interfaces.AbstractSession."""

    @abc.abstractmethod
    def run_prefill(self, contents): ...

    @abc.abstractmethod
    def run_decode(self): ...

    @abc.abstractmethod
    def run_decode_async(self): ...

    @abc.abstractmethod
    def run_text_scoring(self, target_text, store_token_lengths=False): ...

    @abc.abstractmethod
    def get_benchmark_info(self): ...

    @abc.abstractmethod
    def cancel_process(self): ...


class AbstractConversation(abc.ABC):
    """litert_lm.interfaces.AbstractConversation."""

    @abc.abstractmethod
    def send_message(self, message, extra_context=None): ...

    @abc.abstractmethod
    def send_message_async(self, message, extra_context=None): ...

    @abc.abstractmethod
    def render_message_to_string(self, message): ...

    @abc.abstractmethod
    def token_count(self): ...

    @abc.abstractmethod
    def get_benchmark_info(self): ...


class AbstractBenchmark(abc.ABC):
    """litert_lm.interfaces.AbstractBenchmark."""

    @abc.abstractmethod
    def run(self): ...
