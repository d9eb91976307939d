"""Writes the coremltools golden references under testdata/coreml/goldens/.

Usage: .venv/bin/python scripts/coreml/make_goldens.py

Each golden is a small MIL program built with coremltools' own builder, converted to an iOS18
ML Program (no graph passes, so the file holds the program as built), optionally quantized by
coremltools, and saved; for each we commit:
  <name>/model.mlmodel  the model spec, re-serialized deterministically with the one
                        nondeterministic field (the conversion date metadata) removed
  <name>/model.pbtxt    the same spec as protobuf text, for reading and diffing
  <name>/weight.bin     the package's weight file
coreml/golden_test.ts builds the same programs with llamane's builder and compares.
The weights come from the formulas below, which the Deno test repeats; the quantized goldens use
power-of-two scales and integer levels, so coremltools' quantizer recovers them exactly.
"""

import os
import shutil
import tempfile

import numpy as np

import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types
from coremltools.optimize.coreml import (
    OpLinearQuantizerConfig,
    OptimizationConfig,
    linear_quantize_weights,
)

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "coreml", "goldens")
IOS18 = ct.target.iOS18


def convert(prog, precision=ct.precision.FLOAT16):
    return ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=IOS18,
        compute_precision=precision,
        skip_model_load=True,
        pass_pipeline=ct.PassPipeline.EMPTY,
    )


def save(name, mlmodel_or_path):
    """Commits model.mlmodel, model.pbtxt and weight.bin of a model or saved package."""
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(mlmodel_or_path, str):
            package = mlmodel_or_path
        else:
            package = os.path.join(tmp, f"{name}.mlpackage")
            mlmodel_or_path.save(package)
        spec = ct.utils.load_spec(package)
        user = spec.description.metadata.userDefined
        if "com.github.apple.coremltools.conversion_date" in user:
            del user["com.github.apple.coremltools.conversion_date"]
        out = os.path.join(OUT, name)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "model.mlmodel"), "wb") as f:
            f.write(spec.SerializeToString(deterministic=True))
        with open(os.path.join(out, "model.pbtxt"), "w") as f:
            f.write(str(spec))
        weights = os.path.join(package, "Data", "com.apple.CoreML", "weights", "weight.bin")
        shutil.copyfile(weights, os.path.join(out, "weight.bin"))


# --- weights (the Deno test computes the same numbers) -------------------------------------------

def ramp(shape, denominator):
    """arange(n) / denominator in fp16, row-major."""
    return (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / denominator).astype(np.float16)


def int4_levels(rows, cols):
    """((5i + j) mod 15) - 7: every 15 consecutive columns reach both -7 and 7."""
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return ((5 * i + j) % 15 - 7).astype(np.float32)


def int8_levels(rows, cols):
    """((37i + 11j) mod 255) - 127, with column 0 set to 127 so every row reaches 127."""
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    q = ((37 * i + 11 * j) % 255 - 127).astype(np.float32)
    q[:, 0] = 127
    return q


def block_scales(rows, blocks):
    """2^-((i + b) mod 4 + 2) for row i, block b."""
    i, b = np.meshgrid(np.arange(rows), np.arange(blocks), indexing="ij")
    return np.exp2(-((i + b) % 4 + 2)).astype(np.float32)


def quantized_weight(levels, scales):
    block = levels.shape[1] // scales.shape[1]
    return (levels * np.repeat(scales, block, axis=1)).astype(np.float16)


# --- programs ------------------------------------------------------------------------------------

def ops_fp16():
    """Most of the exporter's op set on fp16 activations, weights in weight.bin."""
    embedding = ramp((10, 4), 16)
    weight = ramp((8, 4), 32)

    @mb.program(
        input_specs=[
            mb.TensorSpec(shape=(1, 3), dtype=types.int32),
            mb.TensorSpec(shape=(1, 3, 4), dtype=types.fp16),
        ],
        opset_version=IOS18,
    )
    def prog(tokens, h):
        e = mb.gather(x=embedding, indices=tokens, axis=0, name="embed")
        s = mb.add(x=e, y=h, name="sum")
        n = mb.layer_norm(x=s, axes=[-1], name="norm")
        q = mb.linear(x=n, weight=weight, name="proj")
        a, b = mb.split(x=q, num_splits=2, axis=-1, name="halves")
        scores = mb.matmul(x=a, y=b, transpose_y=True, name="scores")
        p = mb.softmax(x=scores, axis=-1, name="probs")
        o = mb.matmul(x=p, y=b, name="mix")
        c = mb.concat(values=[o, e], axis=-1, name="cat")
        r = mb.reshape(x=c, shape=[1, 3, 2, 4], name="heads")
        t = mb.transpose(x=r, perm=[0, 2, 1, 3], name="swap")
        tail = mb.slice_by_index(x=t, begin=[0, 0, 1, 0], end=[1, 2, 3, 4], name="tail")
        f = mb.cast(x=tokens, dtype="fp16", name="tokf")
        return tail, f

    return convert(prog)


def ops_fp32():
    """The rest of the op set (RMSNorm pieces, activations, shape ops) in fp32."""
    gamma = (0.5 + np.arange(12) / 8).astype(np.float32)
    # A different divisor than gamma: coremltools stores equal consts of one function twice,
    # llamane once, and these goldens compare weight.bin byte for byte.
    divisor = (1 + np.arange(12) / 4).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 12), dtype=types.fp32)], opset_version=IOS18)
    def prog(x):
        sq = mb.mul(x=x, y=x, name="sq")
        ms = mb.reduce_mean(x=sq, axes=[-1], keep_dims=True, name="ms")
        inv = mb.rsqrt(x=ms, epsilon=1e-5, name="inv")
        n = mb.mul(x=x, y=inv, name="normed")
        g = mb.mul(x=n, y=gamma, name="scaled")
        act = mb.silu(x=g, name="act")
        gate = mb.sigmoid(x=g, name="gate")
        d = mb.sub(x=act, y=gate, name="diff")
        r = mb.real_div(x=d, y=divisor, name="ratio")
        ex = mb.expand_dims(x=r, axes=[0], name="ex")
        sl = mb.slice_by_size(x=ex, begin=[0, 1, 0], size=[1, 1, 12], name="row")
        sq2 = mb.squeeze(x=sl, axes=[0], name="flat")
        return sq2

    return convert(prog, ct.precision.FLOAT32)


def linear_program(weight, rows_in=1):
    @mb.program(
        input_specs=[mb.TensorSpec(shape=(rows_in, weight.shape[1]), dtype=types.fp16)],
        opset_version=IOS18,
    )
    def prog(x):
        y = mb.linear(x=x, weight=weight, name="y")
        return mb.softmax(x=y, axis=-1, name="p")

    return prog


def quantized(levels, scales, dtype, granularity, block_size=None):
    weight = quantized_weight(levels, scales)
    model = convert(linear_program(weight))
    options = {"dtype": dtype, "granularity": granularity, "weight_threshold": 0}
    if block_size is not None:
        options["block_size"] = block_size
    config = OptimizationConfig(global_config=OpLinearQuantizerConfig(**options))
    return linear_quantize_weights(model, config)


def multifunction(tmp):
    """Two functions (4 rows and 1 row) over the same weight, merged by save_multifunction."""
    weight = ramp((16, 64), 256)
    paths = {}
    for name, rows in (("prefill", 4), ("decode", 1)):
        paths[name] = os.path.join(tmp, f"{name}.mlpackage")
        convert(linear_program(weight, rows)).save(paths[name])
    desc = ct.utils.MultiFunctionDescriptor()
    for name, path in paths.items():
        desc.add_function(path, src_function_name="main", target_function_name=name)
    desc.default_function_name = "decode"
    out = os.path.join(tmp, "multifunction.mlpackage")
    ct.utils.save_multifunction(desc, out)
    return out


def main():
    save("ops_fp16", ops_fp16())
    save("ops_fp32", ops_fp32())
    save("int4_block32", quantized(int4_levels(16, 64), block_scales(16, 2), "int4", "per_block", 32))
    save("int4_channel", quantized(int4_levels(16, 64), block_scales(16, 1), "int4", "per_channel"))
    save("int8_channel", quantized(int8_levels(16, 64), block_scales(16, 1), "int8", "per_channel"))
    with tempfile.TemporaryDirectory() as tmp:
        save("multifunction", multifunction(tmp))


if __name__ == "__main__":
    main()
