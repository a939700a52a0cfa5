"""The METADATA entry of a .task bundle: MediaPipe's ``LlmParameters``
protobuf (package odml.infra.proto, llm_params.proto), read and written
with the ``protobuf`` package.

The schema is declared here in Python, with MediaPipe's message names,
field names and field numbers, so that a bundle made by MediaPipe's bundler
reads here and one made here parses as MediaPipe's LlmParameters. Fields of
TransformerParameters that pocketlm does not use (nested messages, norms)
are not declared: protobuf keeps them as unknown fields, and they survive a
parse and re-serialize unchanged. The descriptors live in a private pool, so
importing MediaPipe's own generated modules in the same process does not
clash with them.

Older pocketlm bundles (0.1) wrote METADATA as JSON; ``parse_metadata``
reads both.
"""

from __future__ import annotations

import json

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from ..errors import ModelFileError

_PACKAGE = "odml.infra.proto"
BYTES_TO_UNICODE = 1  # LlmParameters.InputOutputNormalization.INPUT_OUTPUT_NORMALIZATION_BYTES_TO_UNICODE

_F = descriptor_pb2.FieldDescriptorProto
_INT32, _STRING, _FLOAT, _BOOL, _ENUM, _MESSAGE = (_F.TYPE_INT32, _F.TYPE_STRING, _F.TYPE_FLOAT, _F.TYPE_BOOL,
                                                   _F.TYPE_ENUM, _F.TYPE_MESSAGE)


def _message(file: descriptor_pb2.FileDescriptorProto, name: str, fields, oneofs=()):
    msg = file.message_type.add(name=name)
    for oneof in oneofs:
        msg.oneof_decl.add(name=oneof)
    for spec in fields:
        fname, number, ftype = spec[:3]
        opts = spec[3] if len(spec) > 3 else {}
        f = msg.field.add(name=fname, number=number, type=ftype,
                          label=_F.LABEL_REPEATED if opts.get("repeated") else _F.LABEL_OPTIONAL)
        if "type_name" in opts:
            f.type_name = opts["type_name"]
        if "oneof" in opts:
            f.oneof_index = opts["oneof"]
        if opts.get("proto3_optional"):
            f.proto3_optional = True
    return msg


def _build():
    pool = descriptor_pool.DescriptorPool()
    pt = descriptor_pb2.FileDescriptorProto(name="pocketlm/prompt_template.proto", package=_PACKAGE,
                                            syntax="proto3")
    _message(pt, "PromptTemplate", [("session_prefix", 1, _STRING), ("prompt_prefix", 2, _STRING),
                                    ("prompt_suffix", 3, _STRING)])
    tp = descriptor_pb2.FileDescriptorProto(name="pocketlm/transformer_params.proto", package=_PACKAGE,
                                            syntax="proto3")
    _message(tp, "TransformerParameters", [
        ("batch_size", 1, _INT32), ("max_seq_length", 2, _INT32), ("embedding_dim", 3, _INT32),
        ("hidden_dimension", 4, _INT32), ("head_dimension", 5, _INT32), ("num_heads", 6, _INT32),
        ("num_stacks", 7, _INT32), ("num_kv_heads", 9, _INT32), ("skip_absolute_positional_embeddings", 18, _BOOL),
        ("query_rescale_factor", 25, _FLOAT), ("vision_tokens_num", 26, _INT32), ("num_extra_stacks", 27, _INT32),
        ("max_num_images", 28, _INT32)])
    lp = descriptor_pb2.FileDescriptorProto(name="pocketlm/llm_params.proto", package=_PACKAGE, syntax="proto3",
                                            dependency=[pt.name, tp.name])
    msg = _message(lp, "LlmParameters", [
        ("transformer_parameters", 1, _MESSAGE, {"type_name": f".{_PACKAGE}.TransformerParameters"}),
        ("vocab_size", 2, _INT32),
        ("start_token_id", 4, _INT32, {"oneof": 0}),
        ("stop_tokens", 5, _STRING, {"repeated": True}),
        ("start_token", 6, _STRING, {"oneof": 0}),
        ("input_output_normalizations", 7, _ENUM,
         {"repeated": True, "type_name": f".{_PACKAGE}.LlmParameters.InputOutputNormalization"}),
        ("prompt_template", 8, _MESSAGE, {"type_name": f".{_PACKAGE}.PromptTemplate"}),
        ("num_draft_tokens", 9, _INT32, {"oneof": 1, "proto3_optional": True}),
        ("user_role_token", 11, _STRING, {"oneof": 2, "proto3_optional": True}),
        ("system_role_token", 12, _STRING, {"oneof": 3, "proto3_optional": True}),
        ("model_role_token", 13, _STRING, {"oneof": 4, "proto3_optional": True}),
        ("end_role_token", 14, _STRING, {"oneof": 5, "proto3_optional": True}),
        ("submodel_transformer_parameters", 16, _MESSAGE,
         {"type_name": f".{_PACKAGE}.TransformerParameters", "oneof": 6, "proto3_optional": True}),
    ], oneofs=("start_token_union", "_num_draft_tokens", "_user_role_token", "_system_role_token",
               "_model_role_token", "_end_role_token", "_submodel_transformer_parameters"))
    enum = msg.enum_type.add(name="InputOutputNormalization")
    enum.value.add(name="INPUT_OUTPUT_NORMALIZATION_UNKNOWN", number=0)
    enum.value.add(name="INPUT_OUTPUT_NORMALIZATION_BYTES_TO_UNICODE", number=BYTES_TO_UNICODE)
    for f in (pt, tp, lp):
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.LlmParameters"))


LlmParameters = _build()


def build_metadata(start_token: str, stop_tokens: list[str], system_prompt: str | None = None,
                   prompt_prefix: str | None = None, prompt_suffix: str | None = None,
                   bytes_to_unicode: bool = False) -> bytes:
    """The serialized LlmParameters MediaPipe's bundler writes for these settings."""
    p = LlmParameters()
    p.start_token = start_token
    p.stop_tokens.extend(stop_tokens)
    if bytes_to_unicode:
        p.input_output_normalizations.append(BYTES_TO_UNICODE)
    if system_prompt:
        p.prompt_template.session_prefix = system_prompt
    if prompt_prefix:
        p.prompt_template.prompt_prefix = prompt_prefix
    if prompt_suffix:
        p.prompt_template.prompt_suffix = prompt_suffix
    return p.SerializeToString()


def parse_metadata(raw: bytes, source: str = "METADATA") -> dict:
    """The runtime's view of a bundle's METADATA: start_token (text) or
    start_token_id, stop_tokens, system_prompt, prompt_prefix, prompt_suffix,
    enable_bytes_to_unicode_mapping, and role tokens where set. Reads
    MediaPipe's protobuf and pocketlm 0.1's JSON; anything else is a
    ModelFileError naming ``source``."""
    if raw[:1] == b"{":
        try:
            meta = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFileError(f"{source}: corrupted JSON metadata ({e})") from None
        if not isinstance(meta, dict):
            raise ModelFileError(f"{source}: JSON metadata must be an object")
        _check_types(meta, source)
        return {k: v for k, v in meta.items() if v is not None}
    p = LlmParameters()
    try:
        p.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelFileError(f"{source}: not an LlmParameters protobuf ({type(e).__name__}: {e})") from None
    meta: dict = {"stop_tokens": list(p.stop_tokens)}
    which = p.WhichOneof("start_token_union")
    if which == "start_token":
        meta["start_token"] = p.start_token
    elif which == "start_token_id":
        meta["start_token_id"] = p.start_token_id
    t = p.prompt_template
    for key, value in (("system_prompt", t.session_prefix), ("prompt_prefix", t.prompt_prefix),
                       ("prompt_suffix", t.prompt_suffix)):
        if value:
            meta[key] = value
    unknown = [n for n in p.input_output_normalizations if n not in (0, BYTES_TO_UNICODE)]
    if unknown:
        raise ModelFileError(f"{source}: input_output_normalizations {unknown} are not known")
    if BYTES_TO_UNICODE in p.input_output_normalizations:
        meta["enable_bytes_to_unicode_mapping"] = True
    for key in ("user_role_token", "system_role_token", "model_role_token", "end_role_token"):
        if p.HasField(key):
            meta[key] = getattr(p, key)
    if p.vocab_size:
        meta["vocab_size"] = p.vocab_size
    return meta


def _check_types(meta: dict, source: str) -> None:
    for key in ("start_token", "prompt_prefix", "prompt_suffix", "system_prompt"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise ModelFileError(f"{source}: {key} must be a string, got {meta[key]!r}")
    stops = meta.get("stop_tokens")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise ModelFileError(f"{source}: stop_tokens must be a list of strings, got {stops!r}")
