#!/usr/bin/python3
"""Writes the Llama-3.2-1B-shaped benchmark checkpoint as a Hugging Face folder: bf16 safetensors
in two shards with model.safetensors.index.json, and config.json (LlamaForCausalLM, tied
embeddings, rope_scaling llama3 with factor 32).

Usage: /usr/bin/python3 scripts/bench/make_llama32_1b_hf.py CONSOLIDATED.pth PARAMS.json OUT_DIR

It converts the Meta checkpoint of make_llama32_1b_shape.py: Hugging Face names, q and k rows of
each head permuted to rotate-half order, the same bf16 bits. Does nothing when OUT_DIR already
holds config.json; config.json is written last, so an interrupted run is redone. Memory: the
whole checkpoint (torch.load cannot map it lazily here), 2.5 GB.
"""

import json
import pathlib
import struct
import sys

import torch

NAMES = {
    "attention_norm": "input_layernorm",
    "attention.wq": "self_attn.q_proj",
    "attention.wk": "self_attn.k_proj",
    "attention.wv": "self_attn.v_proj",
    "attention.wo": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "feed_forward.w1": "mlp.gate_proj",
    "feed_forward.w2": "mlp.down_proj",
    "feed_forward.w3": "mlp.up_proj",
}
GLOBALS = {"tok_embeddings": "model.embed_tokens", "norm": "model.norm", "output": "lm_head"}


def hf_name(meta: str) -> str:
    stem, suffix = meta.rsplit(".", 1)
    if stem.startswith("layers."):
        _, layer, part = stem.split(".", 2)
        return f"model.layers.{layer}.{NAMES[part]}.{suffix}"
    return f"{GLOBALS[stem]}.{suffix}"


def rotate_half(rows: torch.Tensor, heads: int) -> torch.Tensor:
    out_dim, in_dim = rows.shape
    return rows.reshape(heads, out_dim // heads // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def write_shard(path: pathlib.Path, tensors: list) -> int:
    header, offset = {}, 0
    for name, tensor in tensors:
        size = tensor.numel() * 2
        header[name] = {"dtype": "BF16", "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, tensor in tensors:
            f.write(tensor.contiguous().view(torch.int16).numpy().tobytes())
    return offset


def main() -> None:
    checkpoint, params_path, out = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    if (out / "config.json").exists():
        print(f"already there: {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    params = json.loads(params_path.read_text())
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    tensors = []
    for name, tensor in state.items():
        if ".attention.wq." in name:
            tensor = rotate_half(tensor, params["n_heads"])
        elif ".attention.wk." in name:
            tensor = rotate_half(tensor, params["n_kv_heads"])
        tensors.append((hf_name(name), tensor))
    half = len(tensors) // 2
    weight_map, total = {}, 0
    for i, part in enumerate((tensors[:half], tensors[half:])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        total += write_shard(out / file, part)
        weight_map.update({name: file for name, _ in part})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    embedding = state["tok_embeddings.weight"]
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": params["dim"],
        "intermediate_size": state["layers.0.feed_forward.w1.weight"].shape[0],
        "num_hidden_layers": params["n_layers"],
        "num_attention_heads": params["n_heads"],
        "num_key_value_heads": params["n_kv_heads"],
        "head_dim": params["dim"] // params["n_heads"],
        "rms_norm_eps": params["norm_eps"],
        "rope_theta": params["rope_theta"],
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        "max_position_embeddings": 131072,
        "vocab_size": embedding.shape[0],
        "tie_word_embeddings": "output.weight" not in state,
        "torch_dtype": "bfloat16",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {out}: {len(tensors)} tensors, {total} bytes in 2 shards")


if __name__ == "__main__":
    main()
