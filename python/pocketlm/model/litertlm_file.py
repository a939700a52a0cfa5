"""A .litertlm file (LiteRT-LM's container) read with LiteRT-LM's own schema
code (litert-lm-builder: the header's flatbuffer, the LlmMetadata and
ExecutorMetadata protobufs), and `.task` bundles told apart by the model they
hold (GGUF or TFLite). It runs nothing and needs no LiteRT runtime: every
offset and size is checked against the file before use, so a truncated or
corrupted file is a ModelFileError naming the file and the section, before
any runtime sees the bytes. native/src/model/litertlm.c is the C twin.

Layout (litertlm_core.py): bytes 0-7 "LITERTLM", three uint32 version fields,
bytes 24-31 the uint64 end of the header, from byte 32 to there the
LiteRTLMMetaData flatbuffer (system metadata, and per section its items,
begin/end offsets and data type); sections start on 16 KiB boundaries.
"""

from __future__ import annotations

import mmap
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelFileError, reading
from .flatbuffer_bounds import Bounds
from .tflite_file import LITERT_EXTRA, TFLiteModel, is_tflite, read_tflite

MAGIC = b"LITERTLM"
HEADER_BEGIN = 32  # litertlm_core.HEADER_BEGIN_BYTE_OFFSET
SUPPORTED_MAJOR_VERSION = 1  # litertlm_core.LITERTLM_MAJOR_VERSION
# a tokenizer.json larger than this, inflated, is refused (the largest real ones are tens of MB)
MAX_TOKENIZER_JSON = 256 << 20

# AnySectionDataType values (litertlm_header_schema's enum; the C reader keeps the same numbers)
TFLITE_MODEL, SP_TOKENIZER, LLM_METADATA, HF_TOKENIZER_ZLIB, TFLITE_WEIGHTS, EXECUTOR_METADATA = 3, 4, 5, 6, 7, 9
PREFILL_DECODE = "tf_lite_prefill_decode"  # the model_type of the LLM's own graph

# vtable slots of the header schema's tables (litertlm_header_schema_py_generated.py's Offset(n) calls),
# for the length checks the generated code does not make
_ROOT_SYSTEM, _ROOT_SECTIONS = 4, 6
_SYSTEM_ENTRIES = _SECTIONS_OBJECTS = _SECTION_ITEMS = _KV_KEY = _STRING_VALUE = 4


def _schema():
    """litert-lm-builder's generated flatbuffer module and protobuf modules, or a ModelFileError."""
    try:
        from litert_lm_builder import litertlm_header_schema_py_generated as schema
        from litert_lm_builder.runtime.proto import executor_metadata_pb2, llm_metadata_pb2
    except ImportError:
        raise ModelFileError(f"reading a .litertlm file needs LiteRT-LM's schema code (litert-lm-builder): "
                             f"{LITERT_EXTRA}") from None
    except Exception as e:  # the generated protobuf modules refuse an older protobuf runtime
        raise ModelFileError(f"LiteRT-LM's schema code (litert-lm-builder) cannot load: {type(e).__name__}: {e}; "
                             f"{LITERT_EXTRA}") from None
    return schema, llm_metadata_pb2, executor_metadata_pb2


def section_type_name(data_type: int) -> str:
    """AnySectionDataType's name for a section type, from the schema when it is installed."""
    try:
        schema = _schema()[0]
    except ModelFileError:
        schema = None
    if schema is not None:
        for k, v in vars(schema.AnySectionDataType).items():
            if v == data_type and not k.startswith("_"):
                return k
    return f"type {data_type}"


@dataclass
class Section:
    index: int
    data_type: int  # AnySectionDataType
    type_name: str  # its name: TFLiteModel, SP_Tokenizer, LlmMetadataProto, ...
    offset: int  # begin_offset: where its bytes start in the file
    size: int  # end_offset - begin_offset
    items: dict[str, object] = field(default_factory=dict)  # the section's key/value items (the first of a key)
    # the role of a TFLiteModel / TFLiteWeights section (tf_lite_prefill_decode, tf_lite_embedder, ...): the first
    # model_type item with a non-empty string value, as litert-lm-builder's litertlm_peek.get_model_type finds it
    model_type: str | None = None

    def describe(self) -> str:
        return f"section {self.index} ({self.type_name})"


@dataclass
class Tokenizer:
    kind: str  # "sentencepiece" (a SentencePiece model proto) or "tokenizer.json" (Hugging Face)
    section: int  # the section it came from
    data: bytes  # the model's bytes, or the tokenizer.json's UTF-8 text inflated from HF_Tokenizer_Zlib
    compressed_size: int = 0  # HF_Tokenizer_Zlib: bytes of the zlib stream

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


@dataclass
class LiteRTLMFile:
    path: Path
    file_size: int
    version: tuple[int, int, int]
    header_end: int  # the header's flatbuffer runs from byte 32 to here
    system_metadata: dict[str, object]
    sections: list[Section]
    llm_metadata: dict  # LlmMetadata in pocketlm's names (see llm_metadata_dict)
    llm_metadata_message: object | None  # the parsed litert.lm.proto.LlmMetadata, every field
    executor_metadata: dict | None  # ExecutorMetadata as protobuf's MessageToDict gives it
    tokenizer: Tokenizer | None
    models: dict[int, TFLiteModel]  # section index -> the TFLite graph read there (read_graphs=True)

    def sections_of(self, data_type: int) -> list[Section]:
        return [s for s in self.sections if s.data_type == data_type]

    def model_sections(self) -> dict[str, Section]:
        """TFLiteModel sections by role (model_type; "unspecified" without one), the first of each role."""
        out: dict[str, Section] = {}
        for s in self.sections_of(TFLITE_MODEL):
            out.setdefault(s.model_type or "unspecified", s)
        return out

    def model(self, role: str = PREFILL_DECODE) -> TFLiteModel | None:
        s = self.model_sections().get(role)
        return self.models.get(s.index) if s is not None else None


def read_litertlm(path: str | Path, read_graphs: bool = True) -> LiteRTLMFile:
    """Sections, system metadata, LlmMetadata (mapped onto pocketlm's names),
    ExecutorMetadata, the tokenizer (bytes, or tokenizer.json inflated with
    its declared size checked) and, with read_graphs, each TFLite model
    section's graph (tflite_file.read_tflite). Nothing is handed to a runtime."""
    schema, llm_pb2, exec_pb2 = _schema()
    p = Path(path)
    with open(p, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < HEADER_BEGIN:
            raise ModelFileError(f"{p}: {size} bytes are too few for a .litertlm file (its header alone is "
                                 f"{HEADER_BEGIN})")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        view = memoryview(mm)
        try:
            out = _read(p, view, size, schema, llm_pb2, exec_pb2)
        finally:
            view.release()
    finally:
        try:
            mm.close()
        except BufferError:  # a view a traceback still holds: the collector closes it
            pass
    if read_graphs:
        weights = {w.model_type: w for w in out.sections_of(TFLITE_WEIGHTS)}
        for s in out.sections_of(TFLITE_MODEL):
            g = out.models[s.index] = read_tflite(p, s.offset, s.size, name=f"{p}: {s.describe()}")
            w = weights.get(s.model_type)
            if w is not None and g.external_end > w.size:  # its external buffers lie in that section
                raise ModelFileError(f"{p}: {s.describe()}: its external buffers run past the end of {w.describe()} "
                                     f"(end at {g.external_end}, the section has {w.size} bytes)")
    return out


def _read(p: Path, view, size: int, schema, llm_pb2, exec_pb2) -> LiteRTLMFile:
    if bytes(view[:8]) != MAGIC:
        raise ModelFileError(f"{p}: not a .litertlm file (it starts with {bytes(view[:8])!r}, not {MAGIC!r})")
    version = struct.unpack_from("<III", view, 8)
    if version[0] != SUPPORTED_MAJOR_VERSION:
        raise ModelFileError(f"{p}: LiteRT-LM format version {'.'.join(map(str, version))}; this reader knows "
                             f"major version {SUPPORTED_MAJOR_VERSION}")
    header_end = struct.unpack_from("<Q", view, 24)[0]
    if header_end > size:
        raise ModelFileError(f"{p}: the header runs past the end of the file (ends at {header_end}, the file has "
                             f"{size} bytes)")
    if header_end <= HEADER_BEGIN + 4:
        raise ModelFileError(f"{p}: the header ends at {header_end}, before any metadata (it starts at "
                             f"{HEADER_BEGIN})")
    header = view[HEADER_BEGIN:header_end]
    b = Bounds(header, f"{p}: header")
    with reading(p, "header (LiteRTLMMetaData)"):
        root = schema.LiteRTLMMetaData()
        root.Init(header, b.root("LiteRTLMMetaData"))
        b.table(root, "LiteRTLMMetaData")
        system = {}
        sm = b.table(root.SystemMetadata(), "system_metadata")
        if sm is not None:
            for i in range(b.vector(sm, _SYSTEM_ENTRIES, 4, "system_metadata.entries")):
                key, value = _key_value(schema, b, sm.Entries(i), f"system_metadata entry {i}")
                if key is not None:
                    system[key] = value
        sections = []
        sec = b.table(root.SectionMetadata(), "section_metadata")
        n = b.vector(sec, _SECTIONS_OBJECTS, 4, "section_metadata.objects") if sec is not None else 0
        for i in range(n):
            o = b.table(sec.Objects(i), f"section {i}")
            data_type = o.DataType()
            what = f"section {i} ({section_type_name(data_type)})"
            items, model_type = {}, None
            for j in range(b.vector(o, _SECTION_ITEMS, 4, f"{what}'s items")):
                key, value = _key_value(schema, b, o.Items(j), f"{what}, item {j}")
                if key is not None:
                    items.setdefault(key, value)
                if key == "model_type" and model_type is None and isinstance(value, str) and value:
                    if "\0" in value:
                        raise ModelFileError(f"{p}: {what}: its model_type holds a NUL byte")
                    model_type = value
            begin, end = o.BeginOffset(), o.EndOffset()
            _check_section(p, what, begin, end, header_end, size)
            sections.append(Section(i, data_type, section_type_name(data_type), begin, end - begin, items,
                                    model_type))

    out = LiteRTLMFile(p, size, version, header_end, system, sections, {}, None, None, None, {})
    meta = out.sections_of(LLM_METADATA)
    if meta:
        s = meta[0]
        msg = llm_pb2.LlmMetadata()
        _parse_proto(msg, view, s, p)
        out.llm_metadata_message = msg
        out.llm_metadata = llm_metadata_dict(msg)
    exe = out.sections_of(EXECUTOR_METADATA)
    if exe:
        from google.protobuf.json_format import MessageToDict

        msg = exec_pb2.ExecutorMetadata()
        _parse_proto(msg, view, exe[0], p)
        out.executor_metadata = MessageToDict(msg)
    out.tokenizer = _tokenizer(p, view, out)
    return out


def _check_section(p: Path, what: str, begin: int, end: int, header_end: int, size: int) -> None:
    if end > size:
        raise ModelFileError(f"{p}: {what} runs past the end of the file (ends at {end}, the file has {size} bytes)")
    if end < begin:
        raise ModelFileError(f"{p}: {what} ends before it begins (begins at {begin}, ends at {end})")
    if begin < header_end:
        raise ModelFileError(f"{p}: {what} begins inside the header (at {begin}, the header ends at {header_end})")


def _key_value(schema, b: Bounds, kvp, what: str):
    """(key, value) of a KeyValuePair, the value by its VData type; (None, None) for an entry without a key."""
    b.table(kvp, what)
    key = b.string(kvp, _KV_KEY, f"{what}'s key")
    table = kvp.Value()
    if key is None or table is None:
        return key, None
    vt = kvp.ValueType()
    b.table(table, f"{what} ({key})'s value")
    if vt == schema.VData.StringValue:
        v = schema.StringValue()
        v.Init(table.Bytes, table.Pos)
        return key, b.string(v, _STRING_VALUE, f"{what} ({key})'s value")
    names = {v: k for k, v in vars(schema.VData).items() if not k.startswith("_")}
    cls = getattr(schema, names.get(vt, ""), None) if vt != schema.VData.NONE else None
    if cls is None or not hasattr(cls, "Value"):
        return key, None
    v = cls()
    v.Init(table.Bytes, table.Pos)
    return key, v.Value()


def _parse_proto(msg, view, s: Section, p: Path) -> None:
    from google.protobuf.message import DecodeError

    try:
        msg.ParseFromString(bytes(view[s.offset:s.offset + s.size]))
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelFileError(f"{p}: {s.describe()}: not an {msg.DESCRIPTOR.name} protobuf "
                             f"({type(e).__name__}: {e})") from None


def _token(t) -> tuple[str | None, list[int] | None]:
    """A TokenUnion: (text, None), (None, ids) or (None, None) when neither is set."""
    which = t.WhichOneof("token_union")
    if which == "token_str":
        return t.token_str, None
    if which == "token_ids":
        return None, list(t.token_ids.ids)
    return None, None


def llm_metadata_dict(msg) -> dict:
    """LlmMetadata in pocketlm's metadata names where they exist: start_token
    (text) or start_token_ids (+ start_token_id when one id), stop_tokens
    (texts) and stop_token_ids (lists of ids), the PromptTemplates fields
    user/model/system_prefix/suffix, chat_template (jinja_prompt_template);
    LiteRT-LM's own names for the rest (sampler_params, max_num_tokens,
    llm_model_type, ...). Only fields the file sets appear."""
    meta: dict = {}
    if msg.HasField("start_token"):
        text, ids = _token(msg.start_token)
        if text is not None:
            meta["start_token"] = text
        elif ids is not None:
            meta["start_token_ids"] = ids
            if len(ids) == 1:
                meta["start_token_id"] = ids[0]
    texts, id_lists = [], []
    for t in msg.stop_tokens:
        text, ids = _token(t)
        if text is not None:
            texts.append(text)
        elif ids is not None:
            id_lists.append(ids)
    if texts:
        meta["stop_tokens"] = texts
    if id_lists:
        meta["stop_token_ids"] = id_lists
    if msg.HasField("prompt_templates"):
        pt = msg.prompt_templates
        for role in ("user", "model", "system"):
            if pt.HasField(role):
                affixes = getattr(pt, role)
                meta[f"{role}_prefix"], meta[f"{role}_suffix"] = affixes.prefix, affixes.suffix
    if msg.HasField("jinja_prompt_template"):
        meta["chat_template"] = msg.jinja_prompt_template
    if msg.HasField("sampler_params"):
        sp = msg.sampler_params
        meta["sampler_params"] = {"type": sp.Type.Name(sp.type), "top_k": sp.k, "top_p": sp.p,
                                  "temperature": sp.temperature, "backend": sp.Backend.Name(sp.backend)}
        if sp.HasField("seed"):
            meta["sampler_params"]["seed"] = sp.seed
    if msg.max_num_tokens:
        meta["max_num_tokens"] = msg.max_num_tokens
    which = msg.llm_model_type.WhichOneof("model_type") if msg.HasField("llm_model_type") else None
    if which:
        meta["llm_model_type"] = which
    if msg.HasField("suppress_tokens"):
        meta["suppress_token_ids"] = list(msg.suppress_tokens.ids)
    if msg.HasField("pad_token"):
        text, ids = _token(msg.pad_token)
        meta["pad_token"] = text if text is not None else ids
    for key in ("kv_cache_init_value", "supports_thinking", "supports_function_calling", "min_runtime_version"):
        if msg.HasField(key):
            meta[key] = getattr(msg, key)
    if msg.channels:
        meta["channels"] = [{"name": c.channel_name, "start": c.start, "end": c.end} for c in msg.channels]
    return meta


def _tokenizer(p: Path, view, f: LiteRTLMFile) -> Tokenizer | None:
    """The SentencePiece model, else the tokenizer.json of HF_Tokenizer_Zlib (8-byte little-endian size, then
    a zlib stream that must inflate to exactly that many bytes of UTF-8)."""
    sp = f.sections_of(SP_TOKENIZER)
    if sp:
        s = sp[0]
        if s.size == 0:
            raise ModelFileError(f"{p}: {s.describe()} is empty")
        return Tokenizer("sentencepiece", s.index, bytes(view[s.offset:s.offset + s.size]))
    hf = f.sections_of(HF_TOKENIZER_ZLIB)
    if not hf:
        return None
    s = hf[0]
    what = f"{p}: {s.describe()}"
    if s.size < 8:
        raise ModelFileError(f"{what}: {s.size} bytes, too few for its 8-byte size and a zlib stream")
    declared = struct.unpack_from("<Q", view, s.offset)[0]
    if declared == 0 or declared > MAX_TOKENIZER_JSON:
        raise ModelFileError(f"{what}: declares a tokenizer.json of {declared} bytes (at most "
                             f"{MAX_TOKENIZER_JSON} are read)")
    d = zlib.decompressobj()
    try:
        data = d.decompress(bytes(view[s.offset + 8:s.offset + s.size]), declared + 1)
    except zlib.error as e:
        raise ModelFileError(f"{what}: not a zlib stream ({e})") from None
    if len(data) > declared:
        raise ModelFileError(f"{what}: inflates to more than the {declared} bytes it declares")
    if not d.eof:
        raise ModelFileError(f"{what}: the zlib stream is cut short ({len(data)} of the {declared} bytes it "
                             "declares)")
    if len(data) != declared:
        raise ModelFileError(f"{what}: inflates to {len(data)} bytes, not the {declared} it declares")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{what}: the tokenizer.json is not UTF-8 ({e.reason} at byte {e.start})") from None
    return Tokenizer("tokenizer.json", s.index, data, s.size - 8)


# -- .task bundles ------------------------------------------------------------------

TASK_MODEL_ENTRY = "TF_LITE_PREFILL_DECODE"  # genai.bundler.MODEL_ENTRY


@dataclass
class TaskModel:
    path: Path
    entry: str  # the zip entry holding the model
    kind: str  # "tflite" ("TFL3" at bytes 4-8), "gguf" ("GGUF" at 0-4) or "unknown"
    offset: int  # where a stored entry's bytes start in the bundle (-1 when compressed)
    size: int  # the entry's uncompressed size
    compressed: bool
    head: bytes  # its first 8 bytes
    tflite: TFLiteModel | None = None  # the graph, for kind "tflite" with read_graph


def describe_task_model(path: str | Path, read_graph: bool = True) -> TaskModel:
    """What a .task bundle's TF_LITE_PREFILL_DECODE entry is: a GGUF (what
    pocketlm's converter writes) or a TFLite model (MediaPipe's converter,
    litert-torch), read from its first bytes; with read_graph a TFLite graph
    is read too (read_tflite, in place for a stored entry). A loader routes
    on .kind; a bundle that cannot be read is a ModelFileError naming it."""
    from .loader import _stored_data_offset

    p = Path(path)
    with reading(p, ".task bundle"):
        try:
            zf = zipfile.ZipFile(p)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
            raise ModelFileError(f"{p}: not a readable .task bundle (zip directory: {e})") from None
        with zf:
            names = zf.namelist()
            if TASK_MODEL_ENTRY not in names:
                raise ModelFileError(f"{p}: a .task bundle needs a {TASK_MODEL_ENTRY} entry (it has: "
                                     f"{', '.join(sorted(names)) or 'none'})")
            info = zf.getinfo(TASK_MODEL_ENTRY)
            what = f"{p}: entry {TASK_MODEL_ENTRY}"
            stored = info.compress_type == zipfile.ZIP_STORED
            offset = _stored_data_offset(p, info) if stored else -1  # the loader's reading of it
            if stored and offset + info.file_size > p.stat().st_size:
                raise ModelFileError(f"{what} runs past the end of the file (ends at {offset + info.file_size}, "
                                     f"the file has {p.stat().st_size} bytes)")
            with reading(p, f"entry {TASK_MODEL_ENTRY}"):
                with zf.open(info) as src:
                    head = src.read(8)
            kind = "tflite" if is_tflite(head) else "gguf" if head[:4] == b"GGUF" else "unknown"
            out = TaskModel(p, TASK_MODEL_ENTRY, kind, offset, info.file_size, not stored, head)
            if kind == "tflite" and read_graph:
                if stored:
                    out.tflite = read_tflite(p, offset, info.file_size, name=what)
                else:
                    with reading(p, f"entry {TASK_MODEL_ENTRY}"):
                        data = zf.read(info)
                    out.tflite = read_tflite(data, name=what)
            return out
