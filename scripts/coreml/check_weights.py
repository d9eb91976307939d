"""Checks every weight of an exported bundle, as coremltools dequantizes it, against an independent
NumPy quantization of the checkpoint tensor it came from.

Usage: check_weights.py BUNDLE=CHECKPOINT...

The checkpoint (.safetensors, or a torch.save .pth zip) is read with NumPy and the standard library
alone, so nothing of the exporter is reused. For every linear weight part
(`layers_<i>_<wq|wk|wv|wo|w1|w2|w3>_part<p>_weight`, `output_part<p>_weight`) and the embedding
table (`embedding_table`) of every function of every package, the rows it holds are taken from the
checkpoint (wq and wk rows reordered within each head, even rows first, for the half-split RoPE
the graph uses) and quantized as llamane's docs/design.md states: per group of G values of a row,
scale = max|w| / (2^(b-1) - 1) rounded to the storage dtype, q = clip(round_half_even(w / scale)),
value = q * scale in the storage dtype; float weights are w rounded to the storage dtype. The
scheme comes from the bundle's manifest. Values must match within a hundredth of their group's
step (fp16 rounding of q * scale), exactly for floats. Prints a JSON summary; exits 1 on the first
mismatch.
"""

import json
import os
import pickle
import re
import struct
import sys
import tempfile
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from validate import load_program  # noqa: E402

WEIGHT = re.compile(r"^(?:layers_(\d+)_(wq|wk|wv|wo|w1|w2|w3)|output)_part(\d+)_weight$")
LAYER_TENSORS = {
    "wq": "attention.wq", "wk": "attention.wk", "wv": "attention.wv", "wo": "attention.wo",
    "w1": "feed_forward.w1", "w2": "feed_forward.w2", "w3": "feed_forward.w3",
}


def read_safetensors(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        base = 8 + length
        tensors = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            f.seek(base + start)
            dtype = {"F32": "<f4", "F16": "<f2", "BF16": "bf16"}[entry["dtype"]]
            tensors[name] = as_float32(f.read(end - start), dtype).reshape(entry["shape"])
    return tensors


def as_float32(data, dtype):
    if dtype == "bf16":
        return (np.frombuffer(data, "<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(data, dtype).astype(np.float32)


class TensorRef:
    """What the pickle says of a tensor: its storage, offset, shape and strides."""

    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides


def read_pth(path):
    """A torch.save zip read with pickle's machinery restricted to tensors and dicts."""
    storage_dtypes = {"FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "bf16"}
    with zipfile.ZipFile(path) as archive:
        root = archive.namelist()[0].split("/")[0]

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return lambda storage, offset, shape, strides, *_: TensorRef(
                        storage, offset, shape, strides)
                if (module, name) == ("collections", "OrderedDict"):
                    return dict
                if module == "torch" and name in storage_dtypes:
                    return storage_dtypes[name]
                raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

            def persistent_load(self, pid):
                _, dtype, key, _, _ = pid
                return as_float32(archive.read(f"{root}/data/{key}"), dtype)

        state = Unpickler(archive.open(f"{root}/data.pkl")).load()
    state = state.get("model", state)
    tensors = {}
    for name, ref in state.items():
        if isinstance(ref, TensorRef):
            itemsize = ref.storage.itemsize
            tensors[name] = np.lib.stride_tricks.as_strided(
                ref.storage[ref.offset:], shape=ref.shape,
                strides=[s * itemsize for s in ref.strides]).copy()
    return tensors


def rope_rows(weights, head_dim):
    order = []
    for head in range(weights.shape[0] // head_dim):
        base = head * head_dim
        order += [base + 2 * j for j in range(head_dim // 2)]
        order += [base + 2 * j + 1 for j in range(head_dim // 2)]
    return weights[order]


def expected(w, bits, group, storage):
    """The dequantized values llamane's quantization gives `w`, and the tolerance per value."""
    if bits is None:
        return w.astype(storage).astype(np.float32), np.zeros_like(w)
    qmax = 2 ** (bits - 1) - 1
    groups = w.reshape(w.shape[0], -1, group or w.shape[1])
    scale = (np.abs(groups).max(axis=2, keepdims=True) / qmax).astype(storage).astype(np.float32)
    q = np.clip(np.round(groups / np.where(scale == 0, 1, scale)), -qmax - 1, qmax)
    q = np.where(scale == 0, 0, q)
    values = (q * scale).astype(storage).astype(np.float32).reshape(w.shape)
    return values, np.broadcast_to(scale * 0.01, groups.shape).reshape(w.shape)


def schemes(manifest):
    """(bits, group) of linear weights and of the embedding; bits None for float storage."""
    linear = {"none": (None, 0), "c4w": (4, 0), "b4w": (4, 32), "c8w": (8, 0)}
    linear = linear[manifest["export"]["linearQuantize"]]
    e = manifest["export"]["embeddingQuantize"]
    embedding = (None, 0) if e == "none" else tuple(int(x) for x in e.split(","))
    return linear, embedding


def source_rows(name, manifest, tensors, rows):
    """The checkpoint rows a weight part holds, or None for a name that is not a weight."""
    config = manifest["model"]
    if name == "embedding_table":
        return tensors["tok_embeddings.weight"], "tok_embeddings.weight"
    match = WEIGHT.match(name)
    if match is None:
        return None, None
    layer, kind, part = match.groups()
    if layer is None:
        tensor = "tok_embeddings.weight" if config["tiedOutput"] else "output.weight"
    else:
        tensor = f"layers.{layer}.{LAYER_TENSORS[kind]}.weight"
    weights = tensors[tensor]
    if kind in ("wq", "wk"):
        weights = rope_rows(weights, config["headDim"])
    start = int(part) * rows
    return weights[start:start + rows], tensor


def check_bundle(bundle, checkpoint, scratch):
    """Checks every weight of `bundle`; returns (weights checked, largest difference)."""
    with open(os.path.join(bundle, "manifest.json")) as f:
        manifest = json.load(f)
    tensors = read_safetensors(checkpoint) if checkpoint.endswith(".safetensors") else read_pth(checkpoint)
    storage = np.float16 if manifest["export"]["dtype"] == "fp16" else np.float32
    linear, embedding = schemes(manifest)
    checked, worst = 0, 0.0
    for piece in manifest["pieces"]:
        _, _, prog = load_program(os.path.join(bundle, piece["package"]), scratch)
        for fn_name, fn in prog.functions.items():
            for op in fn.operations:
                var = op.outputs[0]
                if not (op.op_type == "const" or op.op_type.startswith("constexpr_")):
                    continue
                value = var.val if var.val is not None else op.materialized_val_inference()
                actual = np.asarray(value, dtype=np.float32)
                if actual.ndim != 2:
                    continue
                w, tensor = source_rows(var.name, manifest, tensors, actual.shape[0])
                if w is None:
                    continue
                bits, group = embedding if var.name == "embedding_table" else linear
                want, tolerance = expected(w.astype(np.float32), bits, group, storage)
                difference = np.abs(actual - want)
                if (difference > tolerance).any():
                    index = np.unravel_index(np.argmax(difference - tolerance), want.shape)
                    print(f"check_weights.py: {bundle}: {piece['package']} {fn_name} {var.name} "
                          f"({tensor}) differs at {tuple(int(i) for i in index)}: "
                          f"{actual[index]} != {want[index]}", file=sys.stderr)
                    sys.exit(1)
                checked += 1
                worst = max(worst, float(difference.max()))
    return checked, worst


def main():
    report = {}
    for pair in sys.argv[1:]:
        bundle, checkpoint = pair.split("=", 1)
        with tempfile.TemporaryDirectory() as scratch:
            checked, worst = check_bundle(bundle, checkpoint, scratch)
        report[bundle] = {"weights_checked": checked, "max_abs_difference": worst}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
