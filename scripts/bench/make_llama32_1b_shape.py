#!/usr/bin/python3
"""Writes a checkpoint shaped like Meta's Llama 3.2 1B, with random bf16 weights, for benchmarks.

Usage: /usr/bin/python3 scripts/bench/make_llama32_1b_shape.py [out_dir]
(default out_dir: out/bench/llama32-1b-shape/ at the repository root, which git ignores).

It writes `consolidated.00.pth` (torch.save of a flat dict of Meta-named tensors: dim 2048,
16 layers, 32 heads, 8 kv heads, vocab 128256, hidden 8192, tied embeddings so no `output.weight`;
about 1.24 B parameters, 2.5 GB) and `params.json`, and does nothing when both already exist. The
checkpoint is written to a temporary name and renamed into place, so an interrupted run never
leaves a file a benchmark would take for complete.

Memory: torch.save needs every tensor at once, so the peak is the checkpoint's size (2.5 GB) plus
one chunk of fp32 random numbers. Each tensor is created directly in bf16 and filled chunk by chunk,
so no fp32 copy of a whole tensor (the embedding alone would be 1 GB) ever exists.
"""

import os
import pathlib
import sys
import time

import torch

from make_llama_shape import SHAPES, finish, shapes

SHAPE = SHAPES["1b"]
CHUNK_ELEMENTS = 1 << 24
ROOT = pathlib.Path(__file__).resolve().parents[2]


def random_bf16(shape, generator):
    """A bf16 tensor of N(0, 0.02^2) values, filled in chunks of rows."""
    if len(shape) == 1:
        return torch.ones(shape, dtype=torch.bfloat16)
    rows, columns = shape
    tensor = torch.empty(shape, dtype=torch.bfloat16)
    step = max(1, CHUNK_ELEMENTS // columns)
    for start in range(0, rows, step):
        end = min(rows, start + step)
        tensor[start:end] = torch.randn(end - start, columns, generator=generator) * 0.02
    return tensor


def main():
    default = ROOT / "out" / "bench" / "llama32-1b-shape"
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else default
    checkpoint = out / "consolidated.00.pth"
    params = out / "params.json"
    if checkpoint.exists() and params.exists():
        print(f"already there: {checkpoint}")
        return
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    generator = torch.Generator().manual_seed(0)
    state = {name: random_bf16(dims, generator) for name, dims in shapes(SHAPE)}
    count = sum(t.numel() for t in state.values())
    partial = checkpoint.with_suffix(".pth.partial")
    torch.save(state, partial)
    os.replace(partial, checkpoint)
    finish(checkpoint, params, SHAPE, len(state), count, started)


if __name__ == "__main__":
    main()
