"""A Llama GGUF back into a Hugging Face checkpoint folder, F32, so that
exporters which start from a checkpoint (litert-torch's HF exporter) can be fed
the same weights as a GGUF file holds.

    python tools/gguf_to_checkpoint.py MODEL.gguf OUT_DIR [--check PROMPT]

The GGUF is read with pocketlm's reader (canonical names, llama.cpp's
adjacent-pair Q/K rows); every weight is dequantized to F32 and the Q/K rows
are put back in Hugging Face's rotate-half order. OUT_DIR gets config.json
(transformers' LlamaConfig), model.safetensors, tokenizer.json (the GGUF's
byte-level BPE vocabulary, merges and pre-tokenizer), tokenizer_config.json
and generation_config.json.

--check loads the folder with transformers and decodes the prompt greedily,
next to pocketlm's native engine on (a) the same folder converted back to an
F32 GGUF by pocketlm's converter, which must give the same tokens, and (b)
the original GGUF, printed for comparison (its quantized activations may make
it part ways after some tokens). Only Llama-architecture files are handled.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

# canonical name -> Hugging Face name (per layer where it has {i})
HF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}


def unpermute(w: np.ndarray, n_heads: int, head_dim: int) -> np.ndarray:
    """llama.cpp's adjacent-pair Q/K rows back to Hugging Face's rotate-half order
    (the inverse of pocketlm.model.gguf_file.permute_for_llama_cpp)."""
    return np.ascontiguousarray(w.reshape(n_heads, head_dim // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def f32(w) -> np.ndarray:
    from pocketlm.kernels import reference
    from pocketlm.model.forward import Weight

    if not isinstance(w, Weight):
        return np.asarray(w, np.float32)
    if w.qtype in ("F32", "F16"):
        return np.asarray(w.data, np.float32)
    return np.asarray(reference.dequantize(w.data, w.qtype), np.float32)


def _complete(pre):
    """The fields the tokenizers library insists on, filled with its defaults."""
    if pre is None:
        return None
    if pre.get("type") == "Sequence":
        return {**pre, "pretokenizers": [_complete(p) for p in pre["pretokenizers"]]}
    if pre["type"] == "ByteLevel":
        return {"add_prefix_space": False, "trim_offsets": True, "use_regex": True, **pre}
    if pre["type"] == "Split":
        return {"behavior": "Isolated", "invert": False, **pre}
    return pre


def tokenizer_json(tok) -> dict:
    """A tokenizers-library tokenizer.json for pocketlm's BPETokenizer (byte-level BPE)."""
    vocab = {t: i for t, i in tok.vocab.items()}
    merges = [f"{a} {b}" for (a, b), _ in sorted(tok.ranks.items(), key=lambda kv: kv[1])]
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": i in tok.special_ids} for t, i in sorted(tok.added.items(), key=lambda kv: kv[1])]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": _complete(tok.pre_spec),
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": tok.ignore_merges, "vocab": vocab, "merges": merges},
    }


def convert(gguf: Path, out: Path) -> Path:
    from safetensors.numpy import save_file
    from transformers import GenerationConfig, LlamaConfig

    from pocketlm.model.gguf_file import read_gguf
    from pocketlm.tokenizer import BPETokenizer

    cfg, weights, tok, meta = read_gguf(gguf)
    if cfg.arch not in ("llama", "mistral") or cfg.rope_mode != "gptj" or cfg.qkv_bias or cfg.mlp_bias:
        sys.exit(f"{gguf}: only llama.cpp-layout Llama files are handled (arch {cfg.arch}, rope {cfg.rope_mode})")
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, w in weights.items():
        if name.startswith("blk."):
            _, i, rest = name.split(".", 2)
            hf = HF_NAMES[rest].format(i=i)
        else:
            hf = HF_NAMES[name]
        a = f32(w)
        if ".attn_q." in name:
            a = unpermute(a, cfg.n_heads, cfg.head_dim)
        elif ".attn_k." in name:
            a = unpermute(a, cfg.n_kv_heads, cfg.head_dim)
        tensors[hf] = np.ascontiguousarray(a)
    tied = "lm_head.weight" not in tensors
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    eos = list(cfg.eos_token_ids) or ([tok.eos_ids[0]] if tok and tok.eos_ids else [])
    bos = cfg.bos_token_id if cfg.bos_token_id is not None else (tok.bos_id if tok else None)
    hcfg = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                       num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                       num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.head_dim,
                       max_position_embeddings=cfg.max_position_embeddings, rms_norm_eps=cfg.norm_eps,
                       rope_theta=cfg.rope_theta, tie_word_embeddings=tied, hidden_act="silu",
                       bos_token_id=bos, eos_token_id=eos[0] if len(eos) == 1 else eos, torch_dtype="float32")
    hcfg.architectures = ["LlamaForCausalLM"]
    hcfg.save_pretrained(out)
    GenerationConfig(bos_token_id=bos, eos_token_id=hcfg.eos_token_id).save_pretrained(out)
    if isinstance(tok, BPETokenizer):
        (out / "tokenizer.json").write_text(json.dumps(tokenizer_json(tok), ensure_ascii=False))
        name = lambda i: tok.id_to_token.get(i) if i is not None else None  # noqa: E731
        tc = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": name(bos), "eos_token": name(eos[0]) if eos else None,
              "add_bos_token": bool(tok.add_bos), "model_max_length": cfg.max_position_embeddings,
              "clean_up_tokenization_spaces": False}
        if meta.get("chat_template"):
            tc["chat_template"] = meta["chat_template"]
        (out / "tokenizer_config.json").write_text(json.dumps(tc, indent=2, ensure_ascii=False))
    else:
        print(f"note: the file's tokenizer ({type(tok).__name__}) is not written; only byte-level BPE is",
              file=sys.stderr)
    return out


def pocketlm_greedy(gguf: Path, ids: list[int], n: int) -> tuple[list[int], np.ndarray]:
    from pocketlm.engine.native import NativeModel, NativeTokens

    t = NativeTokens(NativeModel.open(gguf), len(ids) + n + 1, "F32")
    logits = t.eval(np.asarray(ids, np.int32))
    first, out = logits.copy(), []
    for _ in range(n):
        nxt = int(np.argmax(logits))
        out.append(nxt)
        logits = t.eval(np.asarray([nxt], np.int32))
    return out, first


def check(gguf: Path, folder: Path, prompt: str, n: int = 24) -> bool:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pocketlm.genai.converter import ConversionConfig, convert_checkpoint

    ht = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    from pocketlm.model.gguf_file import read_gguf

    tok = read_gguf(gguf)[2]
    ids = tok.encode(prompt, add_bos=tok.add_bos)
    hf_ids = ht(prompt)["input_ids"]
    print(f"prompt tokens: pocketlm {ids[:12]}..., transformers {hf_ids[:12]}... "
          f"({'same' if ids == hf_ids else 'DIFFERENT'})")
    with torch.no_grad():
        x = torch.tensor([ids])
        first = model(x).logits[0, -1].numpy()
        g = model.generate(x, max_new_tokens=n, do_sample=False, min_new_tokens=n, pad_token_id=0)[0, len(ids):].tolist()
    with tempfile.TemporaryDirectory() as tmp:
        f32_gguf = Path(tmp) / "f32.gguf"
        convert_checkpoint(ConversionConfig(str(folder), "safetensors", None, "cpu", tmp, output_tflite_file=str(f32_gguf),
                                            is_quantized=False))
        ours, ours_first = pocketlm_greedy(f32_gguf, ids, n)
    orig, orig_first = pocketlm_greedy(gguf, ids, n)
    dec = lambda t: ht.decode(t).replace("\n", "\\n")  # noqa: E731
    print(f"transformers (F32 checkpoint):       {dec(g)!r}")
    print(f"pocketlm (checkpoint -> F32 GGUF):   {dec(ours)!r}")
    print(f"pocketlm (the original GGUF):        {dec(orig)!r}")
    err = np.max(np.abs(first - ours_first)) / np.max(np.abs(first))
    err_q = np.max(np.abs(first - orig_first)) / np.max(np.abs(first))
    print(f"first-step logits, max |diff| / max |logit|: F32 GGUF {err:.2e}, original GGUF {err_q:.2e}")
    ok = g == ours and ids == hf_ids and err < 1e-3
    print("check: " + ("transformers and pocketlm agree" if ok else "MISMATCH"))
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--check", metavar="PROMPT", help="compare transformers' greedy text with pocketlm's")
    a = ap.parse_args()
    convert(a.gguf, a.out)
    print(f"wrote {a.out}")
    if a.check and not check(a.gguf, a.out, a.check):
        sys.exit(1)


if __name__ == "__main__":
    main()
