"""Checks that a bundle exported from a GGUF with `keep` dequantizes to exactly what llama.cpp's
Python package dequantizes the GGUF to.

Usage: check_gguf_blocks.py BUNDLE=GGUF...

For every quantized weight of every function of every package (the linear parts
`layers_<i>_<wq|wk|wv|wo|w1|w2|w3>_part<p>_weight`, `output_part<p>_weight` and `embedding_table`),
the rows it holds are dequantized from the GGUF by `gguf.quants.dequantize` (wq and wk rows
reordered within each head, even rows first, for the half-split RoPE of the graph). Two things
must hold, bit for bit:
- the stored integers times the stored scales, computed in float32 by NumPy from the weight blobs
  as coremltools reads them, equal llama.cpp's values: nothing was requantized;
- coremltools' own dequantization of the op (in the bundle's float type) equals llama.cpp's values
  rounded to that type.
A weight stored as float must equal llama.cpp's values rounded to the bundle's float type. Prints a
JSON summary; exits 1 on the first mismatch.
"""

import json
import os
import re
import sys
import tempfile

import gguf
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from check_weights import rope_rows  # noqa: E402
from validate import load_program  # noqa: E402

WEIGHT = re.compile(r"^(?:layers_(\d+)_(wq|wk|wv|wo|w1|w2|w3)|output)_part(\d+)_weight$")
GGUF_NAMES = {
    "wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
    "w1": "ffn_gate", "w3": "ffn_up", "w2": "ffn_down",
}


def dequantized_tensors(path):
    """Every matrix of the GGUF as llama.cpp dequantizes it, [rows, columns] float32."""
    reader = gguf.GGUFReader(path)
    out = {}
    for tensor in reader.tensors:
        if len(tensor.shape) == 2:
            values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            out[tensor.name] = np.asarray(values, np.float32).reshape(
                int(tensor.shape[1]), int(tensor.shape[0]))
    return out


def source_rows(name, config, tensors, rows):
    """The dequantized GGUF rows a weight holds, or None for a name that is not a weight."""
    if name == "embedding_table":
        return tensors["token_embd.weight"]
    match = WEIGHT.match(name)
    if match is None:
        return None
    layer, kind, part = match.groups()
    if layer is None:
        weights = tensors["token_embd.weight" if config["tiedOutput"] else "output.weight"]
    else:
        weights = tensors[f"blk.{layer}.{GGUF_NAMES[kind]}.weight"]
    if kind in ("wq", "wk"):
        weights = rope_rows(weights, config["headDim"])
    start = int(part) * rows
    return weights[start:start + rows]


def stored_product(op):
    """data * scale in float32 from the op's stored integers and scales, per block of columns."""
    data = np.asarray(op.data.val, np.float32)
    scale = np.asarray(op.scale.val, np.float32)
    if op.offset is not None:
        raise SystemExit(f"check_gguf_blocks.py: {op.name} has an offset, which keep never writes")
    return data * np.repeat(scale, data.shape[1] // scale.shape[1], axis=1)


def fail(where, what, got, want):
    index = np.unravel_index(np.argmax(got.view(np.uint32) != want.view(np.uint32)), want.shape)
    print(f"check_gguf_blocks.py: {where}: {what} differs at {tuple(int(i) for i in index)}: "
          f"{got[index]!r} != {want[index]!r}", file=sys.stderr)
    sys.exit(1)


def check_bundle(bundle, gguf_path, scratch):
    with open(os.path.join(bundle, "manifest.json")) as f:
        manifest = json.load(f)
    storage = np.float16 if manifest["export"]["dtype"] == "fp16" else np.float32
    tensors = dequantized_tensors(gguf_path)
    counts = {"blocks": 0, "float": 0}
    for piece in manifest["pieces"]:
        _, _, prog = load_program(os.path.join(bundle, piece["package"]), scratch)
        for fn_name, fn in prog.functions.items():
            for op in fn.operations:
                var = op.outputs[0]
                if op.op_type not in ("const", "constexpr_blockwise_shift_scale"):
                    continue
                value = var.val if var.val is not None else op.materialized_val_inference()
                actual = np.asarray(value)
                if actual.ndim != 2:
                    continue
                want = source_rows(var.name, manifest["model"], tensors, actual.shape[0])
                if want is None:
                    continue
                where = f"{bundle}: {piece['package']} {fn_name} {var.name}"
                rounded = want.astype(storage).astype(np.float32)
                coreml = actual.astype(np.float32)
                if op.op_type == "const":
                    if not np.array_equal(coreml.view(np.uint32), rounded.view(np.uint32)):
                        fail(where, "the float weight", coreml, rounded)
                    counts["float"] += 1
                    continue
                product = stored_product(op)
                if not np.array_equal(product.view(np.uint32), want.view(np.uint32)):
                    fail(where, "data * scale", product, want)
                if not np.array_equal(coreml.view(np.uint32), rounded.view(np.uint32)):
                    fail(where, "coremltools' dequantization", coreml, rounded)
                counts["blocks"] += 1
    return counts


def main():
    report = {}
    for pair in sys.argv[1:]:
        bundle, gguf_path = pair.split("=", 1)
        with tempfile.TemporaryDirectory() as scratch:
            report[bundle] = check_bundle(bundle, gguf_path, scratch)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
