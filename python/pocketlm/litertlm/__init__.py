"""litert_lm 0.18's Python API (PyPI litert-lm-api) over pocketlm's engines:
`import pocketlm.litertlm as litert_lm` runs a program written for it, on
pocketlm's native, python or LiteRT engine, under a simulated phone when a
device is given (docs/litertlm.md). The names, signatures, defaults and
messages are litert_lm's; pocketlm's additions live in .extras and in the
keyword-only arguments that litert_lm does not have (device, engine, tokenizer).
"""

from ._messages import Content, Contents, Message, Role, ToolCall
from .engine import Benchmark, Conversation, Engine, Session
from .embedding_engine import EmbeddingEngine, InputOverflowStrategy
from .interfaces import (
    AbstractBenchmark,
    AbstractConversation,
    AbstractEngine,
    AbstractSession,
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
from .model_info import LlmCapability, ModelInfo, SupportedModalities
from .tools import tool_from_function

ModelType = LiteRtLmModelType
AbstractEngine.register(Engine)
AbstractSession.register(Session)
AbstractConversation.register(Conversation)
AbstractBenchmark.register(Benchmark)

__all__ = (
    "AbstractBenchmark", "AbstractConversation", "AbstractEngine", "AbstractSession", "EmbeddingEngine",
    "InputOverflowStrategy", "LlmCapability", "SupportedModalities", "ActivationDataType", "Backend", "Benchmark", "BenchmarkInfo", "ConstrainedDecodingConfig", "Content",
    "Contents", "Conversation", "Engine", "LiteRtLmBackendType", "LiteRtLmConstraintProviderType",
    "LiteRtLmModality", "LiteRtLmModelType", "LiteRtLmNpuBrand", "LogSeverity", "LoraConfig", "LoraRankConfig",
    "Message", "ModelInfo", "ModelType", "NoRepeatNgramConfig", "RepetitionPenaltyConfig", "ResponseFormat",
    "Responses", "Role", "SamplerConfig", "Session", "SuppressTokensConfig", "ThinkingConfig", "Tool", "ToolCall",
    "ToolEventHandler", "set_min_log_severity", "tool_from_function",
)
