"""pocketlm.genai.converter: Hugging Face checkpoint -> one GGUF model file,
with the names, parameters and defaults of MediaPipe's genai.converter.

    config = ConversionConfig(input_ckpt="ckpt/", ckpt_format="safetensors", model_type="GEMMA_2B",
                              backend="cpu", output_dir="out/", output_tflite_file="out/gemma.bin")
    convert_checkpoint(config)   # -> out/gemma.bin (a GGUF file, whatever its name)

What is MediaPipe's: every ConversionConfig parameter, in MediaPipe's
order, with its default. As there, the documented call (no quantization
arguments) gives 8-bit weights: each group (attention, feed-forward,
embedding) takes its *_quant_bits, 8 -> Q8_0, 4 -> Q4_0 when is_symmetric
else Q4_1. The output defaults to output_dir/model.tflite, MediaPipe's name;
the bytes are a GGUF model file, which pocketlm and llama.cpp read by its
content, not its name. output_dir must not be a file and is created.
use_fake_weights writes zeros.

What is pocketlm's own: model_type None (read config.json), LLAMA / GPT2 /
... besides MediaPipe's names, 16 bits -> F16, is_quantized=False for F32
weights (keyword only; True, the default, is MediaPipe's behaviour), and
vocab_model_file may be a tokenizer.json folder that goes into the file as
a byte-level BPE. Norms, biases and learned positions always stay F32.
The checkpoint's chat template goes into the file as tokenizer.chat_template
(llama.cpp's key), found where transformers 5 saves it: chat_template.jinja
(a "default" among additional_chat_templates/), else tokenizer_config.json's
chat_template, else a processor's chat_template.json.

Parameters that have no meaning here are accepted at their defaults and
refused otherwise, by name: combine_file_only (there are no weight bins to
combine), obfuscate, fp16_scale (activations are F32 on the CPU),
image_encoder_file / image_adapter_file / submodel_type (no vision models).

LoRA, as MediaPipe's: lora_ckpt (a PEFT adapter: its adapter_model.safetensors,
or the folder with adapter_config.json) and lora_rank (which every adapted
weight's rank must equal) write a second file, lora_output_tflite_file
(default output_dir/lora.tflite), beside the base model. It is a GGUF LoRA
adapter in llama.cpp's format, laid out for the base model file written in
the same call, so pocketlm's setLoraPath and llama.cpp's --lora both load
it. MediaPipe requires backend='gpu' for LoRA (its only LoRA backend);
pocketlm runs adapters on the CPU and takes either.
"""

from __future__ import annotations

import glob
import json
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..model.checkpoint import canonical_tensors
from ..model.config import config_from_dict
from ..model.gguf_file import to_llama_cpp_layout, tokenizer_metadata, write_gguf
from ..model.lora import load_adapter, write_adapter_gguf

# MediaPipe's model_type names, and pocketlm's own, -> config.json model_type
MODEL_TYPES = {
    "GEMMA_2B": "gemma", "GEMMA_7B": "gemma", "GEMMA2_2B": "gemma2", "PHI_2": "phi", "FALCON_RW_1B": "falcon",
    "STABLELM_4E1T_3B": "stablelm", "TINYLLAMA": "llama",
    "LLAMA": "llama", "MISTRAL": "mistral", "GEMMA": "gemma", "GEMMA2": "gemma2", "PHI": "phi", "FALCON": "falcon",
    "STABLELM": "stablelm", "GPT2": "gpt2",
    # MediaPipe 0.10.21's converter names none of these: pocketlm's own names
    "GEMMA3": "gemma3", "QWEN2": "qwen2", "QWEN3": "qwen3", "PHI3": "phi3",
}
# config.json model_types a MODEL_TYPES target also accepts
_SAME_MODEL = {"llama": ("mistral",), "gemma3": ("gemma3_text",)}
_BITS = {8: "Q8_0", 16: "F16"}


@dataclass
class ConversionConfig:
    input_ckpt: str  # model.safetensors / pytorch_model.bin file, a checkpoint folder, or a glob like model*.safetensors
    ckpt_format: str  # "safetensors" or "pytorch"
    model_type: str | None  # MediaPipe's (GEMMA_2B, PHI_2, ...) or pocketlm's (LLAMA, GPT2, ...); None: from config.json
    backend: str  # "cpu" or "gpu" (recorded; both run on the CPU here)
    output_dir: str
    is_symmetric: bool = True
    attention_quant_bits: int = 8
    feedforward_quant_bits: int = 8
    embedding_quant_bits: int = 8
    combine_file_only: bool = False
    vocab_model_file: str = ""  # tokenizer.model, or a folder with tokenizer.json + tokenizer_config.json
    obfuscate: bool = False
    output_tflite_file: str | None = None  # the model file to write (default output_dir/model.tflite)
    fp16_scale: float | None = None
    lora_ckpt: str | None = None
    lora_rank: int | None = None
    lora_output_tflite_file: str | None = None
    image_encoder_file: str | None = None
    image_adapter_file: str | None = None
    submodel_type: str | None = None
    use_fake_weights: bool = False  # every weight written as zero (for size and speed trials)
    is_quantized: bool = field(default=True, kw_only=True)  # pocketlm's: False keeps F32 weights

    def __post_init__(self):
        if self.ckpt_format not in ("safetensors", "pytorch"):
            raise ValueError(f"ckpt_format must be 'safetensors' or 'pytorch', got {self.ckpt_format!r}")
        if self.backend not in ("cpu", "gpu"):
            raise ValueError(f"backend must be 'cpu' or 'gpu', got {self.backend!r}")
        if self.model_type is not None and self.model_type.upper() not in MODEL_TYPES:
            raise ValueError(f"model_type {self.model_type!r} is not one of {', '.join(MODEL_TYPES)}")
        for name in ("attention_quant_bits", "feedforward_quant_bits", "embedding_quant_bits"):
            if getattr(self, name) not in (4, 8, 16):
                raise ValueError(f"{name} must be 8 or 4 (or 16 for F16), got {getattr(self, name)!r}")
        refused = {
            "combine_file_only": (False, "pocketlm writes one model file directly; there are no weight bins to "
                                  "combine"),
            "obfuscate": (False, "pocketlm does not obfuscate model files"),
            "fp16_scale": (None, "pocketlm runs activations in F32, where no fp16 overflow scaling applies"),
            "image_encoder_file": (None, "vision models are not supported"),
            "image_adapter_file": (None, "vision models are not supported"),
            "submodel_type": (None, "submodels are not supported"),
        }
        for name, (default, why) in refused.items():
            value = getattr(self, name)
            if value != default:
                raise ValueError(f"{name}={value!r} is not supported: {why} (leave it at {default!r})")
        if (self.lora_ckpt is None) != (self.lora_rank is None):
            raise ValueError("lora_ckpt and lora_rank must be either both provided or both not provided")
        if self.lora_rank is not None and (isinstance(self.lora_rank, bool) or not isinstance(self.lora_rank, int)
                                           or self.lora_rank < 1):
            raise ValueError(f"lora_rank must be a positive integer, got {self.lora_rank!r}")
        if self.lora_output_tflite_file and self.lora_ckpt is None:
            raise ValueError("lora_output_tflite_file is the output of a LoRA conversion: give lora_ckpt and "
                             "lora_rank with it")
        if os.path.isfile(self.output_dir):
            raise ValueError(f"output_dir {self.output_dir!r} is an existing file, not a directory")
        os.makedirs(self.output_dir, exist_ok=True)
        if not self.output_tflite_file:
            self.output_tflite_file = os.path.join(self.output_dir, "model.tflite")
        if self.lora_ckpt is not None and not self.lora_output_tflite_file:
            self.lora_output_tflite_file = os.path.join(self.output_dir, "lora.tflite")

    def tensor_type(self, name: str, arr: np.ndarray) -> str:
        """The type a canonical tensor is written in."""
        if arr.ndim != 2 or name == "position_embd.weight":
            return "F32"
        if not self.is_quantized:
            return "F32"
        if name in ("token_embd.weight", "output.weight"):
            bits = self.embedding_quant_bits
        elif ".attn_" in name:
            bits = self.attention_quant_bits
        else:
            bits = self.feedforward_quant_bits
        t = _BITS.get(bits) or ("Q4_0" if self.is_symmetric else "Q4_1")
        return t if t == "F16" or arr.shape[1] % 32 == 0 else "F32"  # rows that are not whole blocks stay float


def _checkpoint_files(cfg: ConversionConfig) -> tuple[Path, list[Path]]:
    p = Path(cfg.input_ckpt)
    if p.is_dir():
        folder = p
        pattern = "*.safetensors" if cfg.ckpt_format == "safetensors" else "pytorch_model*.bin"
        files = sorted(folder.glob(pattern))
    else:
        files = sorted(Path(f) for f in glob.glob(str(p)))
        folder = files[0].parent if files else p.parent
    if not files:
        raise FileNotFoundError(f"no {cfg.ckpt_format} checkpoint files at {cfg.input_ckpt}")
    return folder, files


def _read_files(files: list[Path], fmt: str) -> dict[str, np.ndarray]:
    from ..model.checkpoint import read_safetensors
    from ..model.torch_bin import read_torch_bin

    tensors = {}
    for f in files:
        tensors.update(read_safetensors(f) if fmt == "safetensors" else read_torch_bin(f))
    return tensors


def _load_tokenizer(cfg: ConversionConfig, folder: Path, conf: dict):
    from ..errors import reading
    from ..tokenizer import SentencePieceTokenizer, is_tokenizer_json, load_tokenizer, read_chat_template

    src = Path(cfg.vocab_model_file) if cfg.vocab_model_file else folder
    if not src.exists():
        raise FileNotFoundError(f"vocab_model_file {src} does not exist")
    if src.is_file() and is_tokenizer_json(src):
        # a tokenizer.json, by content, whatever its name: read as load_tokenizer reads a folder's, with the
        # tokenizer_config.json beside it (the checkpoint's config.json under it); the chat template from beside
        # it, else the checkpoint's
        tok = load_tokenizer(src.parent, tokenizer_json=src, config=conf)
        if tok.chat_template is None:
            with reading(folder, "chat template"):
                tok.chat_template = read_chat_template(folder)
        return tok
    if src.is_file():
        eos = conf.get("eos_token_id")
        eos_ids = tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ())
        tok = SentencePieceTokenizer(src, conf.get("bos_token_id"), eos_ids)
        tc_path = folder / "tokenizer_config.json"
        tc = json.loads(tc_path.read_text()) if tc_path.is_file() else {}
        tok.add_bos = bool(tc.get("add_bos_token", True)) and tok.bos_id is not None
        with reading(folder, "chat template"):  # chat_template.jinja (transformers 5), else tokenizer_config.json's
            tok.chat_template = read_chat_template(folder)
        return tok
    return load_tokenizer(src)


def _release_pages(arr) -> None:
    """Drops the resident pages of the memory-mapped checkpoint file an array
    views, once its tensor is converted: they are clean file pages, so this
    frees them without losing data, and the converter's peak memory stays near
    its output rather than output + input."""
    base = arr
    while getattr(base, "base", None) is not None and not isinstance(base, np.memmap):
        base = base.base
    mm = getattr(base, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def convert_checkpoint(cfg: ConversionConfig) -> Path:
    """Writes the model file and returns its path."""
    folder, files = _checkpoint_files(cfg)
    conf_path = folder / "config.json"
    if not conf_path.is_file():
        raise FileNotFoundError(f"{conf_path} not found: the converter reads the architecture from it")
    conf = json.loads(conf_path.read_text())
    if cfg.model_type is not None:
        want = MODEL_TYPES[cfg.model_type.upper()]
        if conf.get("model_type") != want and conf.get("model_type") not in _SAME_MODEL.get(want, ()):
            raise ValueError(f"model_type {cfg.model_type} expects a {want!r} checkpoint, but config.json says "
                             f"{conf.get('model_type')!r}")
    mcfg = config_from_dict(conf)
    adapter = _load_lora(cfg, mcfg) if cfg.lora_ckpt is not None else None  # refused before any work, if it must be
    tok = _load_tokenizer(cfg, folder, conf)
    tensors = canonical_tensors(_read_files(files, cfg.ckpt_format), mcfg)

    mcfg = to_llama_cpp_layout(mcfg, tensors)  # so the file also runs in llama.cpp

    from .. import kernels

    from tqdm import tqdm

    out = {}
    for name in tqdm(sorted(tensors), desc="quantizing", unit="tensor", disable=None):  # disable=None: off when not a tty
        arr = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if cfg.use_fake_weights:
            arr = np.zeros_like(arr)
        t = cfg.tensor_type(name, arr)
        out[name] = (kernels.quantize(arr, t) if arr.ndim == 2 else arr.copy(), t)
        del arr
        _release_pages(tensors.pop(name))

    path = Path(cfg.output_tflite_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = write_gguf(path, mcfg, out, tokenizer_metadata(tok),
                         # the checkpoint's name, else its folder's, as llama.cpp's converter names a file (llama.cpp
                         # reads the name: one with "phi3" in it must hold Phi-3's special tokens)
                         extra={"name": conf.get("_name_or_path") or folder.name, "backend": cfg.backend,
                                "source_model_type": cfg.model_type or conf.get("model_type")})
    if adapter is not None:
        lora_path = Path(cfg.lora_output_tflite_file)
        lora_path.parent.mkdir(parents=True, exist_ok=True)
        write_adapter_gguf(lora_path, mcfg, adapter)
    return written


def _load_lora(cfg: ConversionConfig, mcfg):
    """The adapter of lora_ckpt, laid out for the file this call writes, its rank checked against lora_rank."""
    adapter = load_adapter(cfg.lora_ckpt, mcfg, model_layout="llama.cpp")
    for target, pair in adapter.pairs.items():
        if pair.rank != cfg.lora_rank:
            raise ValueError(f"lora_rank={cfg.lora_rank} contradicts the adapter {cfg.lora_ckpt}: its {target} has "
                             f"rank {pair.rank}")
    return adapter
