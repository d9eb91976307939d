"""Checks weights that coremltools dequantized from an exported bundle against an independent
NumPy quantization of the same checkpoint tensor.

Usage: check_quantization.py --checkpoint MODEL.safetensors --tensor NAME --rows START:END
           --bits {4,8,16,32} --group G --dtype {fp16,fp32} [--rope-head-dim HD] ACTUAL.f32

The checkpoint is read here with NumPy alone (safetensors is a JSON header plus raw little-endian
data), so nothing of the exporter is reused. Rows START:END of the tensor (after the RoPE row
permutation when --rope-head-dim is given: within each head, even rows first, then odd rows) are
quantized symmetrically as llamane's DESIGN.md states: per group of G values of a row (G = 0: the
whole row), scale = max|w| / (2^(b-1) - 1) rounded to the storage dtype, q = clip(round(w / scale))
with ties to even, value = q * scale in the storage dtype. Bits 16/32 mean float storage: the
value is w rounded to the dtype. ACTUAL.f32 (from validate.py --value) must match within a
hundredth of each group's quantization step (fp16 rounding of q * scale), or exactly for floats.
Prints a JSON summary; exits 1 on a mismatch.
"""

import argparse
import json
import struct
import sys

import numpy as np


def read_safetensors(path, name):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        entry = header[name]
        if entry["dtype"] != "F32":
            raise SystemExit(f"check_quantization.py: {name} is {entry['dtype']}, expected F32")
        start, end = entry["data_offsets"]
        f.seek(8 + length + start)
        data = np.frombuffer(f.read(end - start), dtype="<f4")
    return data.reshape(entry["shape"])


def rope_rows(weights, head_dim):
    half = head_dim // 2
    order = []
    for head in range(weights.shape[0] // head_dim):
        base = head * head_dim
        order += [base + 2 * j for j in range(half)] + [base + 2 * j + 1 for j in range(half)]
    return weights[order]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tensor", required=True)
    parser.add_argument("--rows", required=True)
    parser.add_argument("--bits", type=int, required=True, choices=[4, 8, 16, 32])
    parser.add_argument("--group", type=int, required=True)
    parser.add_argument("--dtype", required=True, choices=["fp16", "fp32"])
    parser.add_argument("--rope-head-dim", type=int, default=0)
    parser.add_argument("actual")
    args = parser.parse_args()

    weights = read_safetensors(args.checkpoint, args.tensor)
    if args.rope_head_dim:
        weights = rope_rows(weights, args.rope_head_dim)
    start, end = (int(x) for x in args.rows.split(":"))
    w = weights[start:end].astype(np.float32)
    storage = np.float16 if args.dtype == "fp16" else np.float32
    actual = np.fromfile(args.actual, dtype="<f4").reshape(w.shape)

    if args.bits in (16, 32):
        expected = w.astype(storage).astype(np.float32)
        tolerance = np.zeros_like(w)
    else:
        qmax = 2 ** (args.bits - 1) - 1
        group = args.group or w.shape[1]
        groups = w.reshape(w.shape[0], -1, group)
        scale = (np.abs(groups).max(axis=2, keepdims=True) / qmax).astype(storage).astype(np.float32)
        safe = np.where(scale == 0, 1, scale)
        q = np.clip(np.round(groups / safe), -qmax - 1, qmax)
        q = np.where(scale == 0, 0, q)
        expected = (q * scale).astype(storage).astype(np.float32).reshape(w.shape)
        tolerance = np.broadcast_to(scale * 0.01, groups.shape).reshape(w.shape)

    difference = np.abs(actual - expected)
    bad = difference > tolerance
    print(json.dumps({
        "tensor": args.tensor,
        "rows": [start, end],
        "elements": int(w.size),
        "max_abs_difference": float(difference.max()),
        "mismatches": int(bad.sum()),
    }))
    if bad.any():
        index = np.unravel_index(np.argmax(bad), w.shape)
        print(
            f"check_quantization.py: {args.tensor} differs at {tuple(int(i) for i in index)}: "
            f"{actual[index]} != {expected[index]}",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
