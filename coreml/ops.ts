/**
 * The MIL ops llamane emits, with their output types inferred from their inputs (the semantics of
 * docs/reference/coreml-format.md section 6, opset CoreML8). The exporter uses this to declare
 * every op's output type; the CPU backend's planner uses it to re-derive shapes when it runs a
 * function at a shorter call length than the one it was exported with.
 *
 * @module
 */

import type { DType } from "./dtype.ts";
import type { TensorType } from "./tensor.ts";
import { elementCount } from "../shape.ts";

/** One argument of an op: its type, and its values when it is a compile-time constant. */
export interface OpArgument {
  readonly type: TensorType;
  /** Values of a constant argument, as plain numbers (or strings for `cast.dtype`). */
  readonly value?: readonly number[] | readonly string[];
}

/** An op's arguments by parameter name; variadic parameters (`concat.values`) have several. */
export type OpArguments = ReadonlyMap<string, readonly OpArgument[]>;

/** An op whose arguments do not fit its signature. */
export class OpSignatureError extends TypeError {
  constructor(op: string, detail: string) {
    super(`Cannot type op "${op}": ${detail}`);
    this.name = "OpSignatureError";
  }
}

type Shape = readonly number[];

class Arguments {
  constructor(readonly op: string, readonly args: OpArguments) {}

  fail(detail: string): never {
    throw new OpSignatureError(this.op, detail);
  }

  optional(name: string): OpArgument | undefined {
    const list = this.args.get(name);
    if (list !== undefined && list.length !== 1) {
      this.fail(`"${name}" takes one argument, got ${list.length}`);
    }
    return list?.[0];
  }

  one(name: string): OpArgument {
    return this.optional(name) ?? this.fail(`missing input "${name}"`);
  }

  many(name: string): readonly OpArgument[] {
    const list = this.args.get(name);
    if (list === undefined || list.length === 0) this.fail(`missing input "${name}"`);
    return list;
  }

  /** The values of a constant integer (or bool) argument. */
  ints(name: string): number[] {
    const value = this.one(name).value;
    if (value === undefined) this.fail(`"${name}" must be a compile-time constant`);
    return value.map((v) => (typeof v === "number" ? v : this.fail(`"${name}" must be numeric`)));
  }

  optionalInts(name: string): number[] | undefined {
    return this.optional(name) === undefined ? undefined : this.ints(name);
  }

  int(name: string, fallback?: number): number {
    if (this.optional(name) === undefined && fallback !== undefined) return fallback;
    const [value, ...rest] = this.ints(name);
    if (value === undefined || rest.length > 0) this.fail(`"${name}" must be a scalar`);
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    return this.optional(name) === undefined ? fallback : this.int(name) !== 0;
  }

  axis(name: string, rank: number, fallback?: number): number {
    const axis = this.int(name, fallback);
    const normalized = axis < 0 ? axis + rank : axis;
    if (normalized < 0 || normalized >= rank) {
      this.fail(`"${name}" ${axis} is out of range for rank ${rank}`);
    }
    return normalized;
  }

  sameDType(...names: string[]): DType {
    const dtypes = names.map((n) => this.one(n).type.dtype);
    if (dtypes.some((d) => d !== dtypes[0])) {
      this.fail(`${names.join(", ")} must share a dtype, got ${dtypes.join(", ")}`);
    }
    return dtypes[0]!;
  }
}

function broadcast(a: Shape, b: Shape, args: Arguments): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) args.fail(`shapes [${a}] and [${b}] do not broadcast`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

type Inference = (args: Arguments) => TensorType[];

function elementwiseBinary(args: Arguments): TensorType[] {
  const dtype = args.sameDType("x", "y");
  return [{ dtype, shape: broadcast(args.one("x").type.shape, args.one("y").type.shape, args) }];
}

function unary(args: Arguments): TensorType[] {
  return [args.one("x").type];
}

const inferences: Record<string, Inference> = {
  add: elementwiseBinary,
  sub: elementwiseBinary,
  mul: elementwiseBinary,
  real_div: elementwiseBinary,
  silu: unary,
  sigmoid: unary,
  rsqrt: unary,
  softmax(args) {
    args.axis("axis", args.one("x").type.shape.length, -1);
    return unary(args);
  },

  linear(args) {
    const x = args.one("x").type;
    const weight = args.one("weight").type;
    if (x.shape.length < 1 || x.shape.length > 3) {
      args.fail(`x must have rank 1 to 3, got [${x.shape}]`);
    }
    if (weight.shape.length !== 2) args.fail(`weight must be [out, in], got [${weight.shape}]`);
    const [out, inFeatures] = weight.shape as [number, number];
    if (x.shape.at(-1) !== inFeatures) {
      args.fail(`x [${x.shape}] does not match weight [${weight.shape}]`);
    }
    const bias = args.optional("bias");
    if (bias !== undefined && (bias.type.shape.length !== 1 || bias.type.shape[0] !== out)) {
      args.fail(`bias must be [${out}], got [${bias.type.shape}]`);
    }
    return [{ dtype: x.dtype, shape: [...x.shape.slice(0, -1), out] }];
  },

  matmul(args) {
    const dtype = args.sameDType("x", "y");
    const x = [...args.one("x").type.shape];
    const y = [...args.one("y").type.shape];
    if (x.length < 2 || y.length < 2) args.fail("x and y must have rank >= 2");
    if (args.bool("transpose_x", false)) x.splice(-2, 2, x.at(-1)!, x.at(-2)!);
    if (args.bool("transpose_y", false)) y.splice(-2, 2, y.at(-1)!, y.at(-2)!);
    if (x.at(-1) !== y.at(-2)) args.fail(`inner dimensions differ: [${x}] @ [${y}]`);
    const batch = broadcast(x.slice(0, -2), y.slice(0, -2), args);
    return [{ dtype, shape: [...batch, x.at(-2)!, y.at(-1)!] }];
  },

  reshape(args) {
    const x = args.one("x").type;
    const target = args.ints("shape");
    if (target.some((d) => d === 0 || d < -1)) {
      args.fail(`shape [${target}] may only use sizes > 0 and one -1`);
    }
    const inferred = target.filter((d) => d === -1).length;
    if (inferred > 1) args.fail(`shape [${target}] has more than one -1`);
    const known = elementCount(target.filter((d) => d !== -1));
    const total = elementCount(x.shape);
    if (inferred === 0 ? known !== total : total % known !== 0) {
      args.fail(`cannot reshape [${x.shape}] (${total} elements) to [${target}]`);
    }
    return [{ dtype: x.dtype, shape: target.map((d) => (d === -1 ? total / known : d)) }];
  },

  transpose(args) {
    const x = args.one("x").type;
    const perm = args.ints("perm");
    const sorted = [...perm].sort((a, b) => a - b);
    if (perm.length !== x.shape.length || sorted.some((p, i) => p !== i)) {
      args.fail(`perm [${perm}] is not a permutation of rank ${x.shape.length}`);
    }
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) }];
  },

  concat(args) {
    const values = args.many("values").map((v) => v.type);
    const rank = values[0]!.shape.length;
    const axis = args.axis("axis", rank);
    if (args.bool("interleave", false)) args.fail("interleave is not supported");
    let size = 0;
    for (const v of values) {
      if (v.dtype !== values[0]!.dtype || v.shape.length !== rank) {
        args.fail("values must share dtype and rank");
      }
      if (v.shape.some((d, i) => i !== axis && d !== values[0]!.shape[i])) {
        args.fail(`shapes [${v.shape}] and [${values[0]!.shape}] differ off the axis ${axis}`);
      }
      size += v.shape[axis]!;
    }
    return [{
      dtype: values[0]!.dtype,
      shape: values[0]!.shape.map((d, i) => (i === axis ? size : d)),
    }];
  },

  split(args) {
    const x = args.one("x").type;
    const axis = args.axis("axis", x.shape.length);
    const length = x.shape[axis]!;
    let sizes = args.optionalInts("split_sizes");
    if (sizes === undefined) {
      const parts = args.int("num_splits");
      if (parts <= 0 || length % parts !== 0) {
        args.fail(`num_splits ${parts} does not divide ${length}`);
      }
      sizes = Array.from({ length: parts }, () => length / parts);
    }
    if (sizes.reduce((a, b) => a + b, 0) !== length) {
      args.fail(`split_sizes [${sizes}] do not sum to ${length}`);
    }
    return sizes.map((size) => ({
      dtype: x.dtype,
      shape: x.shape.map((d, i) => (i === axis ? size : d)),
    }));
  },

  gather(args) {
    const x = args.one("x").type;
    const indices = args.one("indices").type;
    const axis = args.axis("axis", x.shape.length, 0);
    if (args.int("batch_dims", 0) !== 0) args.fail("batch_dims must be 0");
    if (indices.dtype !== "int32") args.fail(`indices must be int32, got ${indices.dtype}`);
    return [{
      dtype: x.dtype,
      shape: [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)],
    }];
  },

  cast(args) {
    const value = args.one("dtype").value;
    const target = value?.[0];
    if (target === "fp16" || target === "fp32" || target === "int32") {
      return [{ dtype: target, shape: args.one("x").type.shape }];
    }
    return args.fail(`dtype must be "fp16", "fp32" or "int32", got ${JSON.stringify(target)}`);
  },

  layer_norm(args) {
    const x = args.one("x").type;
    const axes = args.ints("axes").map((a) => (a < 0 ? a + x.shape.length : a));
    const normalized = axes.map((a) =>
      x.shape[a] ?? args.fail(`axis ${a} out of range for [${x.shape}]`)
    );
    for (const name of ["gamma", "beta"]) {
      const param = args.optional(name)?.type.shape;
      if (
        param !== undefined &&
        (param.length !== axes.length || param.some((d, i) => d !== normalized[i]))
      ) {
        args.fail(`${name} must be [${normalized}], got [${param}]`);
      }
    }
    return [x];
  },

  reduce_mean(args) {
    const x = args.one("x").type;
    const axes = new Set(args.ints("axes").map((a) => (a < 0 ? a + x.shape.length : a)));
    const keep = args.bool("keep_dims", false);
    const shape = x.shape.flatMap((d, i) => (axes.has(i) ? (keep ? [1] : []) : [d]));
    return [{ dtype: x.dtype, shape }];
  },

  expand_dims(args) {
    const x = args.one("x").type;
    const rank = x.shape.length + args.ints("axes").length;
    const axes = new Set(args.ints("axes").map((a) => (a < 0 ? a + rank : a)));
    const shape: number[] = [];
    for (let i = 0, j = 0; i < rank; i++) shape.push(axes.has(i) ? 1 : x.shape[j++]!);
    return [{ dtype: x.dtype, shape }];
  },

  squeeze(args) {
    const x = args.one("x").type;
    const axes = new Set(args.ints("axes").map((a) => (a < 0 ? a + x.shape.length : a)));
    return [{ dtype: x.dtype, shape: x.shape.filter((d, i) => !(axes.has(i) && d === 1)) }];
  },

  constexpr_blockwise_shift_scale(args) {
    const data = args.one("data").type;
    const scale = args.one("scale").type;
    if (
      scale.shape.length !== data.shape.length ||
      data.shape.some((d, i) => d % scale.shape[i]! !== 0)
    ) {
      args.fail(`scale [${scale.shape}] does not divide data [${data.shape}] into blocks`);
    }
    const offset = args.optional("offset")?.type;
    if (offset !== undefined) {
      if (offset.shape.join() !== scale.shape.join()) {
        args.fail(`offset [${offset.shape}] is not shaped as scale [${scale.shape}]`);
      }
      if (offset.dtype !== data.dtype && offset.dtype !== "fp16" && offset.dtype !== "fp32") {
        args.fail(`offset is ${offset.dtype}, expected the data's ${data.dtype}, fp16 or fp32`);
      }
    }
    return [{ dtype: scale.dtype, shape: data.shape }];
  },

  constexpr_lut_to_dense(args) {
    const indices = args.one("indices").type;
    const lut = args.one("lut").type;
    const rank = indices.shape.length;
    const bits = LUT_INDEX_BITS[indices.dtype] ??
      args.fail(`indices must be uint4, uint6 or uint8, got ${indices.dtype}`);
    if (!["fp16", "fp32", "int8", "uint8"].includes(lut.dtype)) {
      args.fail(`lut must be fp16, fp32, int8 or uint8, got ${lut.dtype}`);
    }
    if (rank < 1 || lut.shape.length !== rank + 2) {
      args.fail(`lut [${lut.shape}] must have two more axes than indices [${indices.shape}]`);
    }
    if (indices.shape.some((d, i) => d % lut.shape[i]! !== 0)) {
      args.fail(`lut [${lut.shape}] does not divide indices [${indices.shape}] into groups`);
    }
    if (lut.shape[rank] !== 2 ** bits) {
      args.fail(`lut [${lut.shape}] needs ${2 ** bits} entries for ${indices.dtype} indices`);
    }
    const vectorSize = lut.shape[rank + 1]!;
    const shape = [...indices.shape];
    if (vectorSize > 1 || args.optional("vector_axis") !== undefined) {
      shape[args.axis("vector_axis", rank)]! *= vectorSize;
    }
    return [{ dtype: lut.dtype, shape }];
  },
};

/** Bits of each dtype `constexpr_lut_to_dense` takes as indices. */
const LUT_INDEX_BITS: Partial<Record<DType, number>> = { uint4: 4, uint6: 6, uint8: 8 };

/** The op types this module knows, i.e. everything the exporter may emit besides `const`. */
export const SUPPORTED_OPS: readonly string[] = Object.keys(inferences);

/**
 * Infers an op's output types from its arguments.
 *
 * @throws {OpSignatureError} for an unknown op or arguments that do not fit its signature
 */
export function inferOutputTypes(op: string, args: OpArguments): TensorType[] {
  const infer = inferences[op];
  if (infer === undefined) throw new OpSignatureError(op, "unsupported op");
  return infer(new Arguments(op, args));
}
