"""litert_lm 0.18's Python API (PyPI litert-lm-api) over pocketlm's engines:
`import pocketlm.litertlm as litert_lm` runs a program written for it, on
pocketlm's native, python or LiteRT engine, under a simulated phone when a
device is given (docs/litertlm.md). The names, signatures, defaults and
messages are litert_lm's; pocketlm's additions live in .extras and in the
keyword-only arguments that litert_lm does not have (device, engine, tokenizer).
"""

from ._messages import Content, Contents, Message, Role, ToolCall
from .engine import Benchmark, Conversation, Engine, Session
from .interfaces import (
    ActivationDataType,
    Backend,
    BenchmarkInfo,
    ConstrainedDecodingConfig,
    LiteRtLmBackendType,
    LiteRtLmConstraintProviderType,
    LiteRtLmModality,
    LiteRtLmModelType,
    LiteRtLmNpuBrand,
    LogSeverity,
    LoraConfig,
    LoraRankConfig,
    NoRepeatNgramConfig,
    RepetitionPenaltyConfig,
    ResponseFormat,
    Responses,
    SamplerConfig,
    SuppressTokensConfig,
    ThinkingConfig,
    Tool,
    ToolEventHandler,
    set_min_log_severity,
)
from .model_info import ModelInfo
from .tools import tool_from_function

ModelType = LiteRtLmModelType

__all__ = (
    "ActivationDataType", "Backend", "Benchmark", "BenchmarkInfo", "ConstrainedDecodingConfig", "Content",
    "Contents", "Conversation", "Engine", "LiteRtLmBackendType", "LiteRtLmConstraintProviderType",
    "LiteRtLmModality", "LiteRtLmModelType", "LiteRtLmNpuBrand", "LogSeverity", "LoraConfig", "LoraRankConfig",
    "Message", "ModelInfo", "ModelType", "NoRepeatNgramConfig", "RepetitionPenaltyConfig", "ResponseFormat",
    "Responses", "Role", "SamplerConfig", "Session", "SuppressTokensConfig", "ThinkingConfig", "Tool", "ToolCall",
    "ToolEventHandler", "set_min_log_severity", "tool_from_function",
)
