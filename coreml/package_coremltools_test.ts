/**
 * Packages written by llamane, checked by coremltools (scripts/coreml/validate.py, run with the
 * oracle Python of testing/oracle_python.ts): manifest, spec, per-op type inference, described
 * I/O, every blob, and dequantized weights. A missing venv fails these tests with the command
 * that creates it.
 *
 * @module
 */

import { deepStrictEqual, rejects, strictEqual } from "node:assert";
import { runOracleScript } from "../testing/oracle_python.ts";
import { BlobStorageReader } from "./blob_storage.ts";
import type { FloatDType } from "./dtype.ts";
import { type FunctionBuilder, ProgramBuilder, type Var } from "./builder.ts";
import type { Model } from "./model.ts";
import { PackageWriter } from "./package.ts";
import { float16Bits, float16Values, scalar, type Tensor, tensor } from "./tensor.ts";

const DIR = Deno.makeTempDirSync({ prefix: "llamane_coremltools_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(DIR, { recursive: true }));

type Quantization = "none" | "int4_channel" | "int4_block32" | "int8_channel";

/** Deterministic values in [-1, 1). */
function wave(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) % 1);
}

/** The integer levels and scales a quantized [rows, cols] weight is stored as. */
function quantizedParts(rows: number, cols: number, q: Quantization, seed: number) {
  const bits = q === "int8_channel" ? 8 : 4;
  const max = 2 ** (bits - 1);
  // `+ 0` turns -0 into 0: stored integers have no sign of zero.
  const levels = wave(rows * cols, seed).map((v) => Math.min(max - 1, Math.round(v * max)) + 0);
  const blocks = q === "int4_block32" ? cols / 32 : 1;
  const scales = wave(rows * blocks, seed + 1).map((v) => 0.01 + Math.abs(v) / 50);
  return { bits, levels, blocks, scales };
}

/** What coremltools should dequantize a weight to: fp16(scale) * level, rounded to `dtype`. */
function dequantized(
  rows: number,
  cols: number,
  q: Quantization,
  seed: number,
  dtype: FloatDType,
): Float32Array {
  const { levels, blocks, scales } = quantizedParts(rows, cols, q, seed);
  const stored = dtype === "fp16" ? float16Values(float16Bits(scales)) : Float32Array.from(scales);
  const exact = levels.map((l, k) => {
    const i = Math.floor(k / cols);
    const b = Math.floor((k % cols) / (cols / blocks));
    return l * stored[i * blocks + b]!;
  });
  return dtype === "fp16" ? float16Values(float16Bits(exact)) : Float32Array.from(exact);
}

/** A [rows, cols] linear weight: a const, or a constexpr_blockwise_shift_scale of int4/int8. */
function weight(
  f: FunctionBuilder,
  name: string,
  rows: number,
  cols: number,
  dtype: FloatDType,
  q: Quantization,
  seed: number,
): Var {
  if (q === "none") return f.const(name, tensor(dtype, [rows, cols], wave(rows * cols, seed)));
  const { bits, levels, blocks, scales } = quantizedParts(rows, cols, q, seed);
  return f.op(
    "constexpr_blockwise_shift_scale",
    {
      data: tensor(bits === 8 ? "int8" : "int4", [rows, cols], levels) as Tensor,
      scale: tensor(dtype, [rows, blocks], scales),
    },
    { dtype, shape: [rows, cols] },
    { name },
  );
}

const D = 64;
const HEADS = 2;
const HEAD_DIM = D / HEADS;
const FF = 128;
const VOCAB = 32;
const CACHE = 8;

/** A one-layer Llama-like function over `rows` tokens with a KV cache, in the exporter's op set. */
function miniLlama(f: FunctionBuilder, rows: number, dtype: FloatDType, q: Quantization): void {
  const t = (...shape: number[]) => ({ dtype, shape });
  const tokens = f.input("tokens", { dtype: "int32", shape: [1, rows] });
  const mask = f.input("mask", t(1, 1, rows, CACHE + rows));
  const kCache = f.input("k_cache_0", t(1, HEADS, CACHE, HEAD_DIM));
  const vCache = f.input("v_cache_0", t(1, HEADS, CACHE, HEAD_DIM));
  const linear = (x: Var, name: string, out: number, inp: number, seed: number) =>
    f.op(
      "linear",
      { x, weight: weight(f, `${name}_weight`, out, inp, dtype, q, seed) },
      t(1, rows, out),
      { name },
    );

  const embedded = f.op(
    "gather",
    {
      x: tensor(dtype, [VOCAB, D], wave(VOCAB * D, 1)),
      indices: tokens,
      axis: scalar("int32", 0),
    },
    t(1, rows, D),
    { name: "embedded" },
  );
  const squared = f.op("mul", { x: embedded, y: embedded }, t(1, rows, D));
  const meanSquare = f.op("reduce_mean", {
    x: squared,
    axes: tensor("int32", [1], [-1]),
    keep_dims: scalar("bool", true),
  }, t(1, rows, 1));
  const inv = f.op("rsqrt", {
    x: f.op("add", { x: meanSquare, y: scalar(dtype, 1e-5) }, t(1, rows, 1)),
  }, t(1, rows, 1));
  const normed = f.op(
    "mul",
    {
      x: f.op("mul", { x: embedded, y: inv }, t(1, rows, D)),
      y: tensor(dtype, [D], wave(D, 2)),
    },
    t(1, rows, D),
    { name: "attention_norm" },
  );

  const heads = (x: Var, name: string) =>
    f.op(
      "transpose",
      {
        x: f.op(
          "reshape",
          { x, shape: tensor("int32", [4], [1, rows, HEADS, HEAD_DIM]) },
          t(1, rows, HEADS, HEAD_DIM),
        ),
        perm: tensor("int32", [4], [0, 2, 1, 3]),
      },
      t(1, HEADS, rows, HEAD_DIM),
      { name },
    );
  const qh = heads(linear(normed, "wq", D, D, 3), "q_heads");
  const [k, v] = f.multiOp(
    "split",
    {
      x: linear(normed, "wkv", 2 * D, D, 4),
      num_splits: scalar("int32", 2),
      axis: scalar("int32", -1),
    },
    [t(1, rows, D), t(1, rows, D)],
    { name: "kv" },
  );
  const kh = heads(k!, "k_heads");
  const vh = heads(v!, "v_heads");
  const all = t(1, HEADS, CACHE + rows, HEAD_DIM);
  const kAll = f.op("concat", { values: [kCache, kh], axis: scalar("int32", 2) }, all);
  const vAll = f.op("concat", { values: [vCache, vh], axis: scalar("int32", 2) }, all);
  const scores = f.op("matmul", {
    x: qh,
    y: kAll,
    transpose_x: scalar("bool", false),
    transpose_y: scalar("bool", true),
  }, t(1, HEADS, rows, CACHE + rows));
  const scaled = f.op("mul", { x: scores, y: scalar(dtype, 1 / Math.sqrt(HEAD_DIM)) }, scores.type);
  const probs = f.op("softmax", {
    x: f.op("add", { x: scaled, y: mask }, scores.type),
    axis: scalar("int32", -1),
  }, scores.type);
  const mixed = f.op("matmul", { x: probs, y: vAll }, t(1, HEADS, rows, HEAD_DIM));
  const merged = f.op("reshape", {
    x: f.op(
      "transpose",
      { x: mixed, perm: tensor("int32", [4], [0, 2, 1, 3]) },
      t(1, rows, HEADS, HEAD_DIM),
    ),
    shape: tensor("int32", [3], [1, rows, D]),
  }, t(1, rows, D));
  const h = f.op("add", { x: embedded, y: linear(merged, "wo", D, D, 5) }, t(1, rows, D));

  const gate = f.op("silu", { x: linear(h, "w1", FF, D, 6) }, t(1, rows, FF));
  const up = linear(h, "w3", FF, D, 7);
  const down = linear(f.op("mul", { x: gate, y: up }, t(1, rows, FF)), "w2", D, FF, 8);
  const h2 = f.op("add", { x: h, y: down }, t(1, rows, D));
  const smooth = f.op("mul", { x: h2, y: f.op("sigmoid", { x: h2 }, h2.type) }, h2.type);
  const halved = f.op("real_div", { x: smooth, y: scalar(dtype, 2) }, h2.type);
  const centered = f.op("sub", { x: halved, y: h2 }, h2.type);
  const final = f.op(
    "layer_norm",
    {
      x: centered,
      axes: tensor("int32", [1], [-1]),
      gamma: tensor(dtype, [D], wave(D, 9)),
      beta: tensor(dtype, [D], wave(D, 10)),
      epsilon: scalar(dtype, 1e-5),
    },
    h2.type,
    { name: "norm" },
  );
  const logits = linear(final, "output", VOCAB, D, 11);
  const last = f.op("slice_by_size", {
    x: logits,
    begin: tensor("int32", [3], [0, rows - 1, 0]),
    size: tensor("int32", [3], [1, 1, VOCAB]),
  }, t(1, 1, VOCAB));
  const lastLogits = f.op(
    "expand_dims",
    {
      x: f.op("squeeze", { x: last, axes: tensor("int32", [1], [1]) }, t(1, VOCAB)),
      axes: tensor("int32", [1], [0]),
    },
    t(1, 1, VOCAB),
    { name: "logits" },
  );
  const kNew = f.op(
    "slice_by_index",
    {
      x: kAll,
      begin: tensor("int32", [4], [0, 0, CACHE, 0]),
      end: tensor("int32", [4], [1, HEADS, CACHE + rows, HEAD_DIM]),
    },
    t(1, HEADS, rows, HEAD_DIM),
    { name: "k_new_0" },
  );
  const positions = f.op("cast", { x: tokens, dtype: scalar("string", dtype) }, t(1, rows), {
    name: "positions",
  });
  f.output(
    lastLogits,
    kNew,
    f.op("mul", { x: vh, y: scalar(dtype, 1) }, vh.type, { name: "v_new_0" }),
    positions,
  );
}

/** Writes a package of `miniLlama` functions and returns its path, model and blob count. */
function writePackage(
  name: string,
  dtype: FloatDType,
  q: Quantization,
  functions: Record<string, number>,
) {
  const path = `${DIR}/${name}.mlpackage`;
  using pkg = PackageWriter.create(path);
  const program = new ProgramBuilder({ weights: pkg.weights });
  for (const [fn, rows] of Object.entries(functions)) {
    miniLlama(program.function(fn), rows, dtype, q);
  }
  const names = Object.keys(functions);
  const model = program.build(names.length > 1 ? { defaultFunctionName: names.at(-1)! } : {});
  pkg.finish(model);
  return { path, model };
}

interface Report {
  packages: {
    path: string;
    specificationVersion: number;
    defaultFunctionName: string;
    functions: Record<string, {
      inputs: { name: string; dtype: string; shape: number[] }[];
      outputs: { name: string; dtype: string; shape: number[] }[];
      ops: Record<string, number>;
    }>;
    blobs: { offset: number; dtype: string; count: number }[];
    values: Record<string, { dtype: string; shape: number[]; path: string }>;
  }[];
}

async function validate(args: string[]): Promise<Report> {
  return JSON.parse(await runOracleScript("scripts/coreml/validate.py", args));
}

function expectedFunctions(model: Model) {
  const described = model.description.functions.length > 0
    ? model.description.functions
    : [{ name: "main", inputs: model.description.inputs, outputs: model.description.outputs }];
  const io = (fs: typeof described[number]["inputs"]) =>
    fs.map(({ name, dtype, shape }) => ({ name, dtype, shape }));
  return Object.fromEntries(described.map((d) => {
    const ops: Record<string, number> = {};
    for (const op of model.program.functions.get(d.name)!.block.operations) {
      ops[op.type] = (ops[op.type] ?? 0) + 1;
    }
    return [d.name, { inputs: io(d.inputs), outputs: io(d.outputs), ops }];
  }));
}

Deno.test("validate.py accepts llamane packages: fp16, fp32, int4 per channel and per block, int8, multifunction", async () => {
  const written = [
    writePackage("fp16", "fp16", "none", { main: 3 }),
    writePackage("fp32", "fp32", "none", { main: 3 }),
    writePackage("int4_channel", "fp16", "int4_channel", { main: 2 }),
    writePackage("int4_block32", "fp16", "int4_block32", { main: 2 }),
    writePackage("int8_channel", "fp32", "int8_channel", { main: 2 }),
    writePackage("multifunction", "fp16", "int4_block32", { prefill: 4, decode: 1 }),
  ];
  const report = await validate(written.map((w) => w.path));
  strictEqual(report.packages.length, written.length);
  report.packages.forEach((r, i) => {
    const { path, model } = written[i]!;
    strictEqual(r.path, path);
    strictEqual(r.specificationVersion, 9);
    strictEqual(r.defaultFunctionName, model.description.defaultFunctionName);
    deepStrictEqual(r.functions, expectedFunctions(model));
    using reader = BlobStorageReader.open(`${path}/Data/com.apple.CoreML/weights/weight.bin`);
    deepStrictEqual(
      r.blobs,
      reader.records().map((b) => ({ offset: b.offsetBytes, dtype: b.dtype, count: b.count })),
    );
  });
});

Deno.test("validate.py sees the functions of a multifunction package share every weight blob", async () => {
  const { path, model } = writePackage("shared", "fp16", "int8_channel", { prefill: 4, decode: 1 });
  const blobOffsets = (fn: string) =>
    model.program.functions.get(fn)!.block.operations.flatMap((op) =>
      [...op.attributes.values(), ...[...op.inputs.values()].flat()].flatMap((b) =>
        typeof b !== "string" && b.kind === "blob" ? [b.offsetBytes] : []
      )
    );
  deepStrictEqual(blobOffsets("prefill"), blobOffsets("decode"));
  const [report] = (await validate([path])).packages;
  strictEqual(report!.blobs.length, new Set(blobOffsets("prefill")).size);
});

for (
  const [q, dtype] of [["int4_channel", "fp16"], ["int4_block32", "fp16"], [
    "int8_channel",
    "fp32",
  ]] as const
) {
  Deno.test(`validate.py dequantizes ${q} ${dtype} weights to scale * level`, async () => {
    const { path } = writePackage(`values_${q}`, dtype, q, { main: 1 });
    const out = `${DIR}/${q}.f32`;
    const [report] = (await validate(["--value", `main:w1_weight=${out}`, path])).packages;
    deepStrictEqual(report!.values[`main:w1_weight`]!.shape, [FF, D]);
    const got = new Float32Array(Deno.readFileSync(out).buffer);
    deepStrictEqual(got, dequantized(FF, D, q, 6, dtype));
  });
}

/** Writes a one-function package whose outputs `build` makes from input `x`; returns its path. */
function writeMistyped(name: string, build: (f: FunctionBuilder, x: Var) => Var): string {
  const path = `${DIR}/${name}.mlpackage`;
  using pkg = PackageWriter.create(path);
  const program = new ProgramBuilder({ weights: pkg.weights });
  const f = program.function("main");
  f.output(build(f, f.input("x", { dtype: "fp16", shape: [1, 32] })));
  pkg.finish(program.build());
  return path;
}

Deno.test("validate.py fails when a declared output type disagrees with coremltools' inference", async () => {
  const wrongLinear = writeMistyped("wrong_linear", (f, x) => {
    const w = f.const("w", tensor("fp16", [4, 32], wave(128, 1)));
    return f.op("linear", { x, weight: w }, { dtype: "fp16", shape: [1, 5] }, { name: "y" });
  });
  await rejects(validate([wrongLinear]), /wrong_linear\.mlpackage: .*Mismatch between var types/);
  // coremltools' loader does not check constexpr outputs; validate.py does.
  const wrongConstexpr = writeMistyped("wrong_constexpr", (f, x) => {
    const w = weight(f, "w", 4, 32, "fp16", "int4_block32", 1);
    const misdeclared = f.op(
      "constexpr_blockwise_shift_scale",
      {
        data: tensor("int4", [4, 32], new Array(128).fill(1)),
        scale: tensor("fp16", [4, 1], [1, 1, 1, 1]),
      },
      { dtype: "fp16", shape: [4, 16] },
      { name: "bad" },
    );
    return f.op(
      "add",
      {
        x: f.op("linear", { x, weight: w }, { dtype: "fp16", shape: [1, 4] }),
        y: f.op("reduce_sum", { x: misdeclared, axes: tensor("int32", [1], [-1]) }, {
          dtype: "fp16",
          shape: [4],
        }),
      },
      { dtype: "fp16", shape: [1, 4] },
      { name: "y" },
    );
  });
  await rejects(
    validate([wrongConstexpr]),
    /op "bad" \(constexpr_blockwise_shift_scale\) declares output "bad" as fp16\[4, 16\] but coremltools infers fp16\[4, 32\]/,
  );
});
