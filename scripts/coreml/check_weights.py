"""Checks every weight of an exported bundle, as coremltools dequantizes it, against an independent
NumPy quantization of the checkpoint tensor it came from.

Usage: check_weights.py BUNDLE=CHECKPOINT...

The checkpoint (.safetensors, or a torch.save .pth zip) is read with NumPy and the standard library
alone, so nothing of the exporter is reused. For every linear weight part
(`layers_<i>_<wq|wk|wv|wo|w1|w2|w3>_part<p>_weight`, `output_part<p>_weight`) and the embedding
table (`embedding_table`) of every function of every package, the rows it holds are taken from the
checkpoint (wq and wk rows reordered within each head, even rows first, for the half-split RoPE
the graph uses) and checked against llamane's docs/design.md: the scales are searched, so each
group's stored scale is taken from the bundle and checked for what the search promises. Per group
of G values of a row, with the absmax scale max|w| / (2^(b-1) - 1) rounded to the storage dtype as
the baseline: the stored integers are q = clip(round_half_even(w / scale + offset)) of the stored
scale and integer offset (0 when the op has none), coremltools' dequantized values are
(q - offset) * scale in the storage dtype (within a hundredth of the group's step), and the
group's squared error (for whole rows of int4, each value's weighted by its square) is no larger
than absmax's. Float weights are w
rounded to the storage dtype, exactly. The scheme comes from the bundle's manifest. Prints a JSON
summary; exits 1 on the first mismatch.

Palettized weights (lut4, lut6: `constexpr_lut_to_dense`, one palette per group of rows) cannot be
recomputed without repeating the exporter's k-means, so the properties a k-means palette has are
checked instead: every dense value is an entry of its group's palette, which has 2^bits entries in
the storage dtype; every value is the entry nearest to the checkpoint's value; and the weighted
squared error (each value's weighted by its square plus the group's mean square) is at most 5%
above that of an independent NumPy k-means minimising the same error (weighted Lloyd's iterations
from the quantiles of importance, run to convergence), which a uniform grid misses by far, and so
does a plain k-means (by 70% to 150% with 16 entries on 576 Gaussian to t-distributed values, 9 to
40 times with 64).

Also reports the relative reconstruction error the export summary states, computed here from what
coremltools reads: per tensor, sum (w - stored)^2 / sum w^2 in float64 over all its parts (each
part once, however many functions hold it), the stored values being (q - offset) * scale of the
stored integers, scales and offsets, or the dense values of float and palettized weights; then the
mean and the worst over the linear weights (layers' and head's), and the embedding table's.
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
    """The rows of a wq or wk matrix as the graph holds them: even rows of each head, then odd."""
    order = []
    for head in range(weights.shape[0] // head_dim):
        base = head * head_dim
        order += [base + 2 * j for j in range(head_dim // 2)]
        order += [base + 2 * j + 1 for j in range(head_dim // 2)]
    return weights[order]


def stored_integers(w, scale, offset, qmax):
    """clip(round_half_even(w / scale + offset)) per group (zeros where the scale is 0), in
    float64."""
    safe = np.where(scale == 0, 1, scale)
    q = np.clip(np.round(w.astype(np.float64) / safe + offset), -qmax - 1, qmax)
    return np.where(scale == 0, 0, q)


def check_quantized(w, data, scale, offset, bits, group, storage):
    """Why the stored integers, scales and offsets of `w` break the rules, or None when they keep
    them."""
    qmax = 2 ** (bits - 1) - 1
    groups = w.reshape(w.shape[0], -1, group or w.shape[1]).astype(np.float64)
    scale = scale.astype(np.float64).reshape(groups.shape[0], groups.shape[1], 1)
    offset = offset.astype(np.float64).reshape(scale.shape)
    data = data.astype(np.float64).reshape(groups.shape)
    if (scale.astype(storage).astype(np.float64) != scale).any():
        return "a scale is not a value of the storage dtype"
    if ((offset < -qmax - 1) | (offset > qmax) | (offset != np.round(offset))).any():
        return "an offset is not an integer of the data's range"
    want = stored_integers(groups, scale, offset, qmax)
    if (want != data).any():
        index = np.unravel_index(np.argmax(want != data), data.shape)
        return f"integer {data[index]} != round(w / scale + offset) = {want[index]} at {index}"
    absmax = (np.abs(groups).max(axis=2, keepdims=True) / qmax).astype(storage).astype(np.float64)
    # Whole rows of int4 minimise the error weighted by each value's square.
    weight = groups**2 if bits == 4 and groups.shape[1] == 1 else 1
    error = (weight * (groups - (data - offset) * scale) ** 2).sum(axis=2)
    baseline = (weight * (groups - stored_integers(groups, absmax, 0, qmax) * absmax) ** 2).sum(axis=2)
    # Both sums are exact to float64 rounding; the search compares them in another order.
    worse = error > baseline * (1 + 1e-9)
    if worse.any():
        index = np.unravel_index(np.argmax(worse), worse.shape)
        return f"group {index} stores error {error[index]} > absmax's {baseline[index]}"
    return None


KMEANS_SLACK = 0.05
"""How much more squared error than an independent k-means fit a palette may leave."""
RESOLUTION = 2.0 ** -22
"""Squared storage rounding of the entries (fp16), relative to the entries' mean square."""


def importance(values):
    """How much each value's squared error counts: its square plus the mean square of its group."""
    squares = np.square(values)
    return squares + squares.mean()


def weighted_error(values, approximations):
    """Mean of each value's squared error times its importance."""
    return (importance(values) * np.square(values - approximations)).mean()


def kmeans_error(values, k, iterations=1000):
    """Weighted error of k-means on `values` minimising that error: Lloyd's iterations, each
    centroid moved to the importance-weighted mean of the values nearest it, from the importance
    quantiles (centroid i the first value at which the running importance reaches (i + 1/2) / k
    of the total)."""
    v = np.sort(values)
    weight = importance(v)
    total = np.concatenate([[0.0], np.cumsum(weight)])
    moment = np.concatenate([[0.0], np.cumsum(weight * v)])
    if total[-1] == 0:
        return 0.0
    targets = (np.arange(k) + 0.5) / k * total[-1]
    c = v[np.minimum(np.searchsorted(total[1:], targets), len(v) - 1)]
    for _ in range(iterations):
        cuts = np.searchsorted(v, (c[1:] + c[:-1]) / 2, side="right")
        bounds = np.concatenate([[0], cuts, [len(v)]])
        mass = total[bounds[1:]] - total[bounds[:-1]]
        means = (moment[bounds[1:]] - moment[bounds[:-1]]) / np.where(mass > 0, mass, 1)
        moved = np.sort(np.where(mass > 0, means, c))
        if np.array_equal(moved, c):
            break
        c = moved
    nearest = c[np.abs(v[:, None] - c[None, :]).argmin(axis=1)]
    return weighted_error(v, nearest)


def palettized_mismatch(actual, w, palettes, storage):
    """Why `actual` is not a k-means palettization of `w` by `palettes` [G, 1, 2^bits, 1], or None."""
    groups = palettes.shape[0]
    entries = palettes.reshape(groups, -1).astype(np.float32)
    if not np.array_equal(entries, entries.astype(storage).astype(np.float32)):
        return "palette entries are not in the storage dtype"
    rows = actual.shape[0] // groups
    for g in range(groups):
        palette = entries[g]
        got = actual[g * rows:(g + 1) * rows].ravel()
        want = w[g * rows:(g + 1) * rows].ravel().astype(np.float64)
        index = np.abs(got[:, None] - palette[None, :]).argmin(axis=1)
        if not np.array_equal(palette[index], got):
            return f"group {g} holds values outside its palette"
        distance = np.abs(want[:, None] - palette[None, :].astype(np.float64))
        slack = distance[np.arange(len(want)), index] - distance.min(axis=1)
        if slack.max() > 0:
            return f"group {g}: value {int(slack.argmax())} is not given its nearest palette entry"
        error = weighted_error(want, palette[index].astype(np.float64))
        reference = kmeans_error(want, len(palette))
        rounding = RESOLUTION * np.square(palette).mean() * importance(want).mean()
        if error > reference * (1 + KMEANS_SLACK) + rounding:
            return (f"group {g}: weighted squared error {error} against {reference} for an "
                    f"independent weighted k-means fit: the palette is no such fit")
    return None


VOCABULARY_TABLES = ("tok_embeddings.weight", "output.weight")
"""The tensors stored as -E says: the embedding table and the output head."""


def schemes(manifest):
    """(bits, group) of the layers' linear weights and of the embedding table, which the output
    head shares; bits None for float storage, group "lut" for palettized weights."""
    linear = {"none": (None, 0), "c4w": (4, 0), "b4w": (4, 32), "c8w": (8, 0),
              "b8w": (8, 32), "lut4": (4, "lut"), "lut6": (6, "lut")}
    linear = linear[manifest["export"]["linearQuantize"]]
    e = manifest["export"]["embeddingQuantize"]
    if e in ("lut4", "lut6"):
        embedding = (int(e[3]), "lut")
    else:
        embedding = (None, 0) if e == "none" else tuple(int(x) for x in e.split(","))
    return linear, embedding


def stored_values(op, actual):
    """What a weight op stores, in float64: (q - offset) * scale per group for quantized data, else
    its dense values (floats and palette entries are exact)."""
    if op.op_type != "constexpr_blockwise_shift_scale":
        return actual.astype(np.float64)
    data = np.asarray(op.data.val, dtype=np.float64)
    scale = np.asarray(op.scale.val, dtype=np.float64)
    offset = np.zeros(scale.shape) if op.offset is None else np.asarray(op.offset.val, np.float64)
    per_group = data.shape[1] // scale.shape[1]
    return (data - np.repeat(offset, per_group, axis=1)) * np.repeat(scale, per_group, axis=1)


def relative_errors(parts):
    """The summary's figures from {part name: (tensor, squared error, squared values)}."""
    linear, embedding = {}, (0.0, 0.0)
    for name, (tensor, error, values) in parts.items():
        if name == "embedding_table":
            embedding = (error, values)
        else:
            sums = linear.get(tensor, (0.0, 0.0))
            linear[tensor] = (sums[0] + error, sums[1] + values)
    relative = {tensor: 0.0 if e == 0 else e / v for tensor, (e, v) in linear.items()}
    worst = max(relative, key=relative.get)
    return {
        "linear_mean": float(np.mean(list(relative.values()))),
        "linear_worst": relative[worst],
        "linear_worst_tensor": worst,
        "embedding": 0.0 if embedding[0] == 0 else embedding[0] / embedding[1],
    }


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
    """Checks every weight of `bundle`; returns (weights checked, largest difference, relative
    errors)."""
    with open(os.path.join(bundle, "manifest.json")) as f:
        manifest = json.load(f)
    tensors = read_safetensors(checkpoint) if checkpoint.endswith(".safetensors") else read_pth(checkpoint)
    storage = np.float16 if manifest["export"]["dtype"] == "fp16" else np.float32
    linear, embedding = schemes(manifest)
    checked, worst = 0, 0.0
    errors = {}
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
                w = w.astype(np.float32)
                if var.name not in errors:
                    w64 = w.astype(np.float64)
                    error = np.square(w64 - stored_values(op, actual)).sum()
                    errors[var.name] = (tensor, float(error), float(np.square(w64).sum()))
                bits, group = embedding if tensor in VOCABULARY_TABLES else linear
                where = f"{bundle}: {piece['package']} {fn_name} {var.name} ({tensor})"
                if group == "lut":
                    problem = (f"is {op.op_type}, expected constexpr_lut_to_dense"
                               if op.op_type != "constexpr_lut_to_dense" else
                               palettized_mismatch(actual, w, op.lut.val, storage))
                    if op.op_type == "constexpr_lut_to_dense" and op.lut.val.shape[2] != 2 ** bits:
                        problem = f"has palettes of {op.lut.val.shape[2]} entries, not {2 ** bits}"
                    if problem is not None:
                        print(f"check_weights.py: {where} {problem}", file=sys.stderr)
                        sys.exit(1)
                    checked += 1
                    continue
                if bits is None:
                    want, tolerance = w.astype(storage).astype(np.float32), np.zeros_like(w)
                else:
                    data, scale = np.asarray(op.data.val), np.asarray(op.scale.val)
                    offset = np.zeros(scale.shape) if op.offset is None else np.asarray(op.offset.val)
                    broken = check_quantized(w, data, scale, offset, bits, group, storage)
                    if broken is not None:
                        print(f"check_weights.py: {where}: {broken}", file=sys.stderr)
                        sys.exit(1)
                    per_group = w.shape[1] // scale.shape[1]
                    step = np.repeat(scale.astype(np.float32), per_group, axis=1)
                    shift = np.repeat(offset.astype(np.float32), per_group, axis=1)
                    want = ((data.astype(np.float32) - shift) * step).astype(storage).astype(np.float32)
                    tolerance = np.abs(step) * 0.01
                difference = np.abs(actual - want)
                if (difference > tolerance).any():
                    index = np.unravel_index(np.argmax(difference - tolerance), want.shape)
                    print(f"check_weights.py: {where} differs at {tuple(int(i) for i in index)}: "
                          f"{actual[index]} != {want[index]}", file=sys.stderr)
                    sys.exit(1)
                checked += 1
                worst = max(worst, float(difference.max()))
    return checked, worst, relative_errors(errors)


def main():
    report = {}
    for pair in sys.argv[1:]:
        bundle, checkpoint = pair.split("=", 1)
        with tempfile.TemporaryDirectory() as scratch:
            checked, worst, errors = check_bundle(bundle, checkpoint, scratch)
        report[bundle] = {"weights_checked": checked, "max_abs_difference": worst,
                          "relative_error": errors}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
