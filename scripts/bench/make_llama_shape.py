#!/usr/bin/python3
"""Writes a checkpoint shaped like Meta's Llama 3.2 1B or 3B or Llama 3.1 8B, with random bf16
weights, for the export benchmarks of models larger than one Neural Engine program holds.
make_llama32_1b_shape.py takes its 1B shape from here.

Usage: /usr/bin/python3 scripts/bench/make_llama_shape.py 1b|3b|8b OUT_DIR

It writes `model.safetensors` (Meta's tensor names, BF16) and `params.json` (Meta's fields, as
Meta ships them for that model), and does nothing when both already exist. The file is written to
a temporary name and renamed into place, so an interrupted run never leaves a file an export
would take for complete.

Memory and time: the file is written tensor by tensor, in slices of one pool of 2^24 random
N(0, 0.02^2) bf16 values, each tensor starting at its own offset in the pool. No tensor is ever
held whole, so the peak is the pool and the temporaries of making it (about 0.2 GB) whatever the
model, and writing the 16 GB of the 8B shape is bound by the disk, not by a random number
generator. The weights are not independent
draws (rows repeat the pool's values in other places), which does not matter to an export:
every row is quantized, converted and written the same way.
"""

import json
import os
import pathlib
import resource
import struct
import sys
import time

import numpy as np

SHAPES = {
    "1b": {
        "params": {
            "dim": 2048,
            "n_layers": 16,
            "n_heads": 32,
            "n_kv_heads": 8,
            "vocab_size": 128256,
            "ffn_dim_multiplier": 1.5,
            "multiple_of": 256,
            "norm_eps": 1e-05,
            "rope_theta": 500000.0,
            "use_scaled_rope": True,
        },
        "hidden": 8192,
        "tied": True,
    },
    "3b": {
        "params": {
            "dim": 3072,
            "n_layers": 28,
            "n_heads": 24,
            "n_kv_heads": 8,
            "vocab_size": 128256,
            "ffn_dim_multiplier": 1.0,
            "multiple_of": 256,
            "norm_eps": 1e-05,
            "rope_theta": 500000.0,
            "use_scaled_rope": True,
        },
        "hidden": 8192,
        "tied": True,
    },
    "8b": {
        "params": {
            "dim": 4096,
            "n_layers": 32,
            "n_heads": 32,
            "n_kv_heads": 8,
            "vocab_size": 128256,
            "ffn_dim_multiplier": 1.3,
            "multiple_of": 1024,
            "norm_eps": 1e-05,
            "rope_theta": 500000.0,
            "use_scaled_rope": True,
        },
        # int(2 * 4 * dim / 3) * ffn_dim_multiplier, rounded up to a multiple of multiple_of.
        "hidden": 14336,
        "tied": False,
    },
}
POOL_ELEMENTS = 1 << 24
# Elements per write: each write copies one slice of the pool into bytes, 8 MB at most.
SLICE_ELEMENTS = 1 << 22
ONE_BF16 = 0x3F80


def shapes(shape):
    """Meta's tensor names and shapes, in the order Meta's checkpoints store them."""
    params, hidden = shape["params"], shape["hidden"]
    dim, heads, kv_heads = params["dim"], params["n_heads"], params["n_kv_heads"]
    kv_dim = dim // heads * kv_heads
    yield "tok_embeddings.weight", (params["vocab_size"], dim)
    for i in range(params["n_layers"]):
        p = f"layers.{i}"
        yield f"{p}.attention.wq.weight", (dim, dim)
        yield f"{p}.attention.wk.weight", (kv_dim, dim)
        yield f"{p}.attention.wv.weight", (kv_dim, dim)
        yield f"{p}.attention.wo.weight", (dim, dim)
        yield f"{p}.feed_forward.w1.weight", (hidden, dim)
        yield f"{p}.feed_forward.w2.weight", (dim, hidden)
        yield f"{p}.feed_forward.w3.weight", (hidden, dim)
        yield f"{p}.attention_norm.weight", (dim,)
        yield f"{p}.ffn_norm.weight", (dim,)
    yield "norm.weight", (dim,)
    if not shape["tied"]:
        yield "output.weight", (params["vocab_size"], dim)


def random_pool(seed):
    """POOL_ELEMENTS bf16 bit patterns of N(0, 0.02^2) values (fp32 rounded to nearest bf16)."""
    values = np.random.default_rng(seed).standard_normal(POOL_ELEMENTS, dtype=np.float32) * 0.02
    bits = values.view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_tensor(file, name, shape, pool, index):
    """Writes one tensor's bf16 bytes: norms are ones, matrices run through the pool cyclically."""
    count = int(np.prod(shape))
    if len(shape) == 1:
        file.write(np.full(count, ONE_BF16, dtype=np.uint16).tobytes())
        return
    start = (index * 7919 * 4099) % POOL_ELEMENTS
    written = 0
    while written < count:
        length = min(SLICE_ELEMENTS, count - written, POOL_ELEMENTS - start)
        file.write(pool[start:start + length].tobytes())
        written += length
        start = (start + length) % POOL_ELEMENTS


def finish(checkpoint, params, shape, tensors, parameters, started):
    """Writes params.json beside the checkpoint, then reports the size, the time and the peak RSS."""
    params.write_text(json.dumps(shape["params"]) + "\n")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.monotonic() - started
    print(f"wrote {checkpoint}: {tensors} tensors, {parameters} parameters, "
          f"{checkpoint.stat().st_size} bytes in {seconds:.1f} s, peak RSS {peak_mb:.0f} MB")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SHAPES:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(SHAPES)} OUT_DIR")
    shape = SHAPES[sys.argv[1]]
    out = pathlib.Path(sys.argv[2])
    checkpoint = out / "model.safetensors"
    params = out / "params.json"
    if checkpoint.exists() and params.exists():
        print(f"already there: {checkpoint}")
        return
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tensors = list(shapes(shape))
    header, offset = {}, 0
    for name, dims in tensors:
        size = int(np.prod(dims)) * 2
        header[name] = {"dtype": "BF16", "shape": list(dims), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    pool = random_pool(0)
    partial = checkpoint.with_suffix(".safetensors.partial")
    with partial.open("wb") as file:
        file.write(struct.pack("<Q", len(text)) + text)
        for index, (name, dims) in enumerate(tensors):
            write_tensor(file, name, dims, pool, index)
    os.replace(partial, checkpoint)
    finish(checkpoint, params, shape, len(tensors), offset // 2, started)


if __name__ == "__main__":
    main()
