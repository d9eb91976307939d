/**
 * Compiles one MIL function of a bundle piece into an execution plan for the native CPU backend
 * (format: ffi/cpu/PLAN.md). This is the only place a program is interpreted on the TypeScript
 * side: it resolves constants, re-infers every shape for the call length asked for (so a decode
 * call with one real token computes one row, not L), fuses dequantization into the ops that read
 * quantized weights, recognises the exporter's overflow-safe RMSNorm and the patterns of
 * `fusion.ts` (linears sharing an input, attention, RoPE, SwiGLU), and assigns every intermediate
 * tensor a place in one scratch arena.
 *
 * @module
 */

import type { MilFunction, Operation, Value } from "../../../coreml/mil.ts";
import type { DType } from "../../../coreml/dtype.ts";
import { float16Values, type TensorType } from "../../../coreml/tensor.ts";
import { elementCount } from "../../../shape.ts";
import { inferOutputTypes, type OpArgument, SUPPORTED_OPS } from "../../../coreml/ops.ts";
import { shapeForCall } from "../../../bundle/io_names.ts";
import { findFusions, type Fusion, type Graph } from "./fusion.ts";

/**
 * Element types the plan's tensors use, spelled as the plan wire format spells them (Rust's
 * `ffi/cpu/src/plan/format.rs`: `f16` for MIL's `fp16`...). Plans must stay byte-identical, so
 * these strings stay as they are rather than following the MIL names of `coreml/dtype.ts`.
 */
export type PlanDType = "f16" | "f32" | "i32" | "i8" | "i4";

/** Where a tensor's bytes live. */
export type PlanStorage =
  | { readonly kind: "input"; readonly index: number }
  | { readonly kind: "output"; readonly index: number }
  | { readonly kind: "arena"; readonly offset: number }
  | { readonly kind: "weight"; readonly offset: number }
  | { readonly kind: "inline"; readonly values: readonly number[] };

/** One tensor of the plan. */
export interface PlanTensor {
  readonly dtype: PlanDType;
  readonly shape: readonly number[];
  readonly storage: PlanStorage;
}

/** A weight read by a fused op: dense, or quantized with scales over groups of `group` inputs. */
export interface PlanWeight {
  readonly data: number;
  readonly scale?: number;
  /** Values per scale along a row; the row length for per-channel scales. */
  readonly group?: number;
}

/** One step; tensor fields are indices into {@link Plan.tensors}. */
export type PlanStep =
  | {
    readonly op: "linear";
    readonly x: number;
    readonly weight: PlanWeight;
    readonly bias?: number;
    readonly out: number;
  }
  | {
    readonly op: "fused_linear";
    readonly x: number;
    /** Weights read side by side; each output is made of whole consecutive parts. */
    readonly parts: readonly { readonly weight: PlanWeight; readonly bias?: number }[];
    readonly outs: readonly number[];
  }
  | {
    readonly op: "attention";
    /** `[L, H, D]`. */
    readonly q: number;
    /** Sources along the key axis, each `[Hkv, S_i, D]`. */
    readonly keys: readonly number[];
    readonly values: readonly number[];
    /** `[L, S]`, added to the scores. */
    readonly mask: number;
    readonly scale: number;
    /** `[L, H, D]`. */
    readonly out: number;
  }
  | {
    readonly op: "rope";
    /** `[L, H, D]`, rotated in halves. */
    readonly x: number;
    /** `[L, D / 2]`. */
    readonly cos: number;
    readonly sin: number;
    readonly out: number;
  }
  | { readonly op: "silu_mul"; readonly gate: number; readonly up: number; readonly out: number }
  | {
    readonly op: "gather";
    readonly table: PlanWeight;
    readonly indices: number;
    readonly out: number;
  }
  | { readonly op: "dequantize"; readonly weight: PlanWeight; readonly out: number }
  | {
    readonly op: "rms_norm";
    readonly x: number;
    readonly gain: number;
    readonly eps: number;
    readonly out: number;
  }
  | {
    readonly op: "layer_norm";
    readonly x: number;
    readonly gamma?: number;
    readonly beta?: number;
    readonly eps: number;
    readonly out: number;
  }
  | {
    readonly op: "binary";
    readonly kind: "add" | "sub" | "mul" | "div";
    readonly a: number;
    readonly b: number;
    readonly out: number;
  }
  | {
    readonly op: "unary";
    readonly kind: "silu" | "sigmoid" | "rsqrt";
    readonly eps: number;
    readonly x: number;
    readonly out: number;
  }
  | { readonly op: "softmax"; readonly x: number; readonly out: number }
  | {
    readonly op: "matmul";
    readonly a: number;
    readonly b: number;
    readonly transposeA: boolean;
    readonly transposeB: boolean;
    readonly out: number;
  }
  | {
    readonly op: "transpose";
    readonly x: number;
    readonly perm: readonly number[];
    readonly out: number;
  }
  | {
    readonly op: "concat";
    readonly inputs: readonly number[];
    readonly axis: number;
    readonly out: number;
  }
  | {
    readonly op: "split";
    readonly x: number;
    readonly axis: number;
    readonly outs: readonly number[];
  }
  | { readonly op: "cast"; readonly x: number; readonly out: number }
  | {
    readonly op: "reduce_mean";
    readonly x: number;
    readonly axes: readonly number[];
    readonly out: number;
  }
  | { readonly op: "copy"; readonly x: number; readonly out: number };

/** An execution plan for one function at one call length. */
export interface Plan {
  readonly version: 1;
  readonly tensors: readonly PlanTensor[];
  /** Tensor ids of the inputs, in the order the caller passes their buffers. */
  readonly inputs: readonly number[];
  readonly inputNames: readonly string[];
  /** Tensor ids of the outputs, in the order the caller passes their buffers. */
  readonly outputs: readonly number[];
  readonly outputNames: readonly string[];
  readonly steps: readonly PlanStep[];
  /** Bytes of scratch memory the steps need. */
  readonly arenaBytes: number;
}

/** A function the planner cannot compile: an op it does not know or a pattern it cannot place. */
export class PlanError extends TypeError {
  constructor(detail: string) {
    super(`Cannot plan the program for the CPU backend: ${detail}`);
    this.name = "PlanError";
  }
}

const PLAN_DTYPES: Partial<Record<DType, PlanDType>> = {
  fp16: "f16",
  fp32: "f32",
  int32: "i32",
  int8: "i8",
  int4: "i4",
};
const BYTES: Record<PlanDType, number> = { f16: 2, f32: 4, i32: 4, i8: 1, i4: 0.5 };
const ALIGNMENT = 64;

function planDType(dtype: DType, where: string): PlanDType {
  return PLAN_DTYPES[dtype] ?? (() => {
    throw new PlanError(`${where} has dtype ${dtype}, which the CPU backend does not run`);
  })();
}

/** What the planner knows about each MIL value while walking the block. */
interface ValueInfo {
  readonly type: TensorType;
  /** Constant values (small immediates) as numbers, for parameters such as axes and shapes. */
  readonly constant?: readonly number[] | readonly string[];
  /** Plan tensor holding it, once it has storage. */
  tensor?: number;
  /** A dequantization the planner will fuse into the op that reads it. */
  readonly quantized?: PlanWeight;
}

function immediateNumbers(value: Value): readonly number[] | readonly string[] | undefined {
  if (value.kind !== "immediate") return undefined;
  const values = value.values;
  if (Array.isArray(values)) return values as readonly string[];
  if (value.dtype === "fp16") return Array.from(float16Values(values as Uint16Array));
  return Array.from(values as ArrayLike<number>);
}

class Planner {
  readonly tensors: PlanTensor[] = [];
  readonly steps: PlanStep[] = [];
  readonly values = new Map<string, ValueInfo>();
  /** Step index of each arena tensor's last use, for buffer reuse. */
  readonly lastUse = new Map<number, number>();
  readonly arenaTensors: number[] = [];
  /** Views (reshapes) to the tensor whose storage they share. */
  readonly viewRoots = new Map<number, number>();

  tensor(type: TensorType, storage: PlanStorage | "arena", where: string): number {
    const id = this.tensors.length;
    const dtype = planDType(type.dtype, where);
    // Arena offsets are assigned after all steps are known.
    this.tensors.push({
      dtype,
      shape: [...type.shape],
      storage: storage === "arena" ? { kind: "arena", offset: -1 } : storage,
    });
    if (storage === "arena") this.arenaTensors.push(id);
    return id;
  }

  /** A tensor of another shape over the same bytes as tensor `source`. */
  view(type: TensorType, source: number): number {
    const root = this.viewRoots.get(source) ?? source;
    const id = this.tensors.length;
    this.tensors.push({ ...this.tensors[root]!, shape: [...type.shape] });
    this.viewRoots.set(id, root);
    return id;
  }

  /** The plan tensor of a value, creating it for constants on first use. */
  use(name: string, step: number): number {
    const info = this.values.get(name) ?? this.fail(`value "${name}" is undefined`);
    if (info.tensor === undefined) {
      if (info.quantized !== undefined) {
        info.tensor = this.tensor(info.type, "arena", `value "${name}"`);
        this.steps.push({ op: "dequantize", weight: info.quantized, out: info.tensor });
      } else {
        this.fail(`value "${name}" has no storage`);
      }
    }
    // A view keeps the bytes it shares alive.
    const root = this.viewRoots.get(info.tensor) ?? info.tensor;
    this.lastUse.set(root, Math.max(this.lastUse.get(root) ?? step, step));
    return info.tensor;
  }

  fail(detail: string): never {
    throw new PlanError(detail);
  }
}

/** The value name of an op argument, registering an inline constant under a name of its own. */
function argumentName(op: Operation, param: string, index: number, planner: Planner): string {
  const b = op.inputs.get(param)![index]!;
  if (typeof b === "string") return b;
  const name = `${op.name}::${param}::${index}`;
  if (!planner.values.has(name)) planner.values.set(name, valueInfo(b, planner, name));
  return name;
}

/** The value name bound to a single-argument parameter, or `undefined` when it is absent. */
function binding(op: Operation, param: string, planner: Planner): string | undefined {
  const list = op.inputs.get(param);
  if (list === undefined) return undefined;
  if (list.length !== 1) {
    planner.fail(`op "${op.name}" has ${list.length} arguments for "${param}"`);
  }
  return argumentName(op, param, 0, planner);
}

function valueInfo(value: Value, planner: Planner, name: string): ValueInfo {
  const constant = immediateNumbers(value);
  const type = { dtype: value.dtype, shape: value.shape };
  if (value.kind === "blob") {
    return {
      type,
      tensor: planner.tensor(
        type,
        { kind: "weight", offset: value.offsetBytes },
        `const "${name}"`,
      ),
    };
  }
  if (value.dtype === "string" || value.dtype === "bool") return { type, constant: constant! };
  const values = constant as readonly number[];
  return {
    type,
    constant: values,
    tensor: planner.tensor(type, { kind: "inline", values }, `const "${name}"`),
  };
}

function argumentsOf(op: Operation, planner: Planner): Map<string, OpArgument[]> {
  const args = new Map<string, OpArgument[]>();
  for (const [param, list] of op.inputs) {
    args.set(
      param,
      list.map((_, k) => {
        const name = argumentName(op, param, k, planner);
        const info = planner.values.get(name) ??
          planner.fail(`op "${op.name}" reads undefined "${name}"`);
        return info.constant === undefined
          ? { type: info.type }
          : { type: info.type, value: info.constant };
      }),
    );
  }
  return args;
}

function constantNumbers(planner: Planner, op: Operation, param: string): number[] | undefined {
  const name = binding(op, param, planner);
  if (name === undefined) return undefined;
  const value = planner.values.get(name)?.constant;
  if (value === undefined || value.some((v) => typeof v !== "number")) {
    return planner.fail(`op "${op.name}" needs a numeric constant for "${param}"`);
  }
  return value as number[];
}

/**
 * Matches the exporter's overflow-safe RMSNorm starting at `ops[index]`: `neg = mul(x, -1)`,
 * `both = concat([x, neg], -1)`, `n = layer_norm(both, [-1])`, `[half, _] = split(n, 2)`,
 * `out = mul(half, gain)`, with no other reader of the intermediate values.
 */
function matchRmsNorm(
  ops: readonly Operation[],
  index: number,
  planner: Planner,
  readerCount: (name: string) => number,
): { x: string; gain: string; eps: number; out: string; length: number } | undefined {
  const [neg, concat, norm, split, scale] = ops.slice(index, index + 5);
  if (neg?.type !== "mul" || concat?.type !== "concat" || norm?.type !== "layer_norm") {
    return undefined;
  }
  if (split?.type !== "split" || scale?.type !== "mul" || split.outputs.length !== 2) {
    return undefined;
  }
  if (norm.inputs.has("gamma") || norm.inputs.has("beta")) return undefined;
  const x = binding(neg, "x", planner)!;
  const values = concat.inputs.get("values") ?? [];
  const chained = values.length === 2 && values[0] === x && values[1] === neg.outputs[0]!.name &&
    binding(norm, "x", planner) === concat.outputs[0]!.name &&
    binding(split, "x", planner) === norm.outputs[0]!.name &&
    binding(scale, "x", planner) === split.outputs[0]!.name;
  if (!chained || constantNumbers(planner, neg, "y")?.[0] !== -1) return undefined;
  const privateValues = [neg.outputs[0]!, concat.outputs[0]!, norm.outputs[0]!, split.outputs[0]!];
  if (
    privateValues.some((v) => readerCount(v.name) !== 1) || readerCount(split.outputs[1]!.name) > 0
  ) return undefined;
  const eps = constantNumbers(planner, norm, "epsilon")?.[0] ?? 1e-5;
  return { x, gain: binding(scale, "y", planner)!, eps, out: scale.outputs[0]!.name, length: 5 };
}

/**
 * Plans `fn` for calls of `callLength` tokens.
 *
 * @param exportedLength the call length the function was exported with
 */
export function planFunction(
  fn: MilFunction,
  exportedLength: number,
  callLength: number,
  outputs: readonly string[],
): Plan {
  const planner = new Planner();
  const inputNames = fn.inputs.map((i) => i.name);
  fn.inputs.forEach((input, index) => {
    const type = {
      dtype: input.type.dtype,
      shape: shapeForCall(input.name, input.type.shape, exportedLength, callLength),
    };
    planner.values.set(input.name, {
      type,
      tensor: planner.tensor(type, { kind: "input", index }, `input "${input.name}"`),
    });
  });
  const outputIndex = new Map(outputs.map((name, i) => [name, i]));

  // Constants and the dequantizations of constants have no other inputs, so they can all be
  // registered up front; the rest is walked in order.
  for (const op of fn.block.operations) {
    if (op.type === "const") {
      planner.values.set(
        op.outputs[0]!.name,
        valueInfo(op.attributes.get("val")!, planner, op.name),
      );
    }
  }
  for (const op of fn.block.operations) {
    if (op.type === "constexpr_blockwise_shift_scale") registerQuantized(op, planner);
  }
  const ops = fn.block.operations.filter((op) =>
    op.type !== "const" && op.type !== "constexpr_blockwise_shift_scale"
  );
  // Per value, the index of the op behind each binding that reads it (an op binding it twice is
  // listed twice), and the op that produces it.
  const readers = new Map<string, number[]>();
  const producers = new Map<string, number>();
  ops.forEach((op, index) => {
    for (const list of op.inputs.values()) {
      for (const b of list) {
        if (typeof b !== "string") continue;
        const known = readers.get(b);
        if (known === undefined) readers.set(b, [index]);
        else known.push(index);
      }
    }
    for (const o of op.outputs) producers.set(o.name, index);
  });
  const readerCount = (name: string) => readers.get(name)?.length ?? 0;

  // Every value's type at this call length, before anything is placed: fusions check shapes.
  for (const op of ops) {
    if (!SUPPORTED_OPS.includes(op.type)) {
      planner.fail(`op "${op.name}" has type "${op.type}", which the CPU backend does not run`);
    }
    const inferred = inferOutputTypes(op.type, argumentsOf(op, planner));
    op.outputs.forEach((o, k) => planner.values.set(o.name, { type: inferred[k]! }));
  }
  const typeOf = (name: string) =>
    planner.values.get(name)?.type ?? planner.fail(`value "${name}" is undefined`);

  const graph: Graph = {
    ops,
    arg: (op, param, index = 0) =>
      (op.inputs.get(param)?.length ?? 0) > index
        ? argumentName(op, param, index, planner)
        : undefined,
    producer: (name) => producers.get(name),
    consumers: (name) => readers.get(name) ?? [],
    isOutput: (name) => outputIndex.has(name),
    type: typeOf,
    constant: (name) => {
      const value = planner.values.get(name)?.constant;
      return value?.every((v) => typeof v === "number") ? value as readonly number[] : undefined;
    },
    weightFormat: (name) => {
      const info = planner.values.get(name)!;
      const q = info.quantized;
      if (q === undefined) return info.type.dtype;
      const data = planner.tensors[q.data]!;
      return `${data.dtype}/${q.group === data.shape[1] ? "channel" : q.group}`;
    },
  };
  const fusions = findFusions(graph);
  const emitAt = new Map(fusions.map((f) => [f.at, f.fusion]));
  const absorbed = new Set(fusions.flatMap((f) => f.absorbs));

  // An op's result goes straight into the caller's output buffer when it is a function output.
  const store = (name: string, type: TensorType): number => {
    const out = outputIndex.get(name);
    const id = planner.tensor(
      type,
      out === undefined ? "arena" : { kind: "output", index: out },
      `value "${name}"`,
    );
    planner.values.set(name, { type, tensor: id });
    return id;
  };
  // A fused step's result in the shape the step computes with, and the program's value as a view.
  const storeAs = (name: string, shape: readonly number[]): number => {
    const type = typeOf(name);
    if (outputIndex.has(name)) planner.fail(`fused value "${name}" is a function output`);
    const id = planner.tensor({ dtype: type.dtype, shape }, "arena", `value "${name}"`);
    planner.values.set(name, { type, tensor: planner.view(type, id) });
    return id;
  };
  const weightOf = (op: Operation, param: string, step: number): PlanWeight => {
    const info = planner.values.get(binding(op, param, planner)!)!;
    if (info.quantized !== undefined) {
      for (const id of [info.quantized.data, info.quantized.scale!]) {
        planner.lastUse.set(id, step);
      }
      return info.quantized;
    }
    return { data: planner.use(binding(op, param, planner)!, step) };
  };
  // Value `name` seen with another shape of the same element count.
  const viewOf = (name: string, shape: readonly number[], step: number): number =>
    planner.view({ dtype: typeOf(name).dtype, shape }, planner.use(name, step));

  const emitFusion = (fusion: Fusion, step: number) => {
    switch (fusion.kind) {
      case "linears": {
        const x = planner.use(fusion.x, step);
        const parts = fusion.outputs.flatMap((o) =>
          o.linears.map((i) => {
            const bias = binding(ops[i]!, "bias", planner);
            return {
              weight: weightOf(ops[i]!, "weight", step),
              ...(bias === undefined ? {} : { bias: planner.use(bias, step) }),
            };
          })
        );
        const outs = fusion.outputs.map((o) => store(o.name, typeOf(o.name)));
        planner.steps.push({ op: "fused_linear", x, parts, outs });
        break;
      }
      case "attention": {
        const [, l, h, d] = typeOf(fusion.q).shape as number[];
        const sources = (names: readonly string[]) =>
          names.map((name) => {
            const [, hkv, s, dd] = typeOf(name).shape as number[];
            return viewOf(name, [hkv!, s!, dd!], step);
          });
        const [, ml, ms] = typeOf(fusion.mask).shape as number[];
        planner.steps.push({
          op: "attention",
          q: viewOf(fusion.q, [l!, h!, d!], step),
          keys: sources(fusion.keys),
          values: sources(fusion.values),
          mask: viewOf(fusion.mask, [ml!, ms!], step),
          scale: fusion.scale,
          out: storeAs(fusion.out, [l!, h!, d!]),
        });
        break;
      }
      case "rope": {
        const [, l, h, d] = typeOf(fusion.x).shape as number[];
        planner.steps.push({
          op: "rope",
          x: viewOf(fusion.x, [l!, h!, d!], step),
          cos: viewOf(fusion.cos, [l!, d! / 2], step),
          sin: viewOf(fusion.sin, [l!, d! / 2], step),
          out: storeAs(fusion.out, [l!, h!, d!]),
        });
        break;
      }
      case "silu_mul":
        planner.steps.push({
          op: "silu_mul",
          gate: planner.use(fusion.gate, step),
          up: planner.use(fusion.up, step),
          out: store(fusion.out, typeOf(fusion.out)),
        });
        break;
    }
  };

  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const step = planner.steps.length;
    const fusion = emitAt.get(i);
    if (fusion !== undefined) {
      emitFusion(fusion, step);
      continue;
    }
    if (absorbed.has(i)) continue;
    const rms = matchRmsNorm(ops, i, planner, readerCount);
    if (rms !== undefined) {
      const x = planner.use(rms.x, step);
      const type = planner.values.get(rms.x)!.type;
      const gain = planner.use(rms.gain, step);
      planner.steps.push({ op: "rms_norm", x, gain, eps: rms.eps, out: store(rms.out, type) });
      i += rms.length - 1;
      continue;
    }
    const types = op.outputs.map((o) => typeOf(o.name));
    const name = op.outputs[0]!.name;
    const arg = (param: string) => planner.use(binding(op, param, planner)!, step);
    switch (op.type) {
      case "linear": {
        const bias = binding(op, "bias", planner);
        const x = arg("x");
        const weight = weightOf(op, "weight", step);
        planner.steps.push({
          op: "linear",
          x,
          weight,
          ...(bias === undefined ? {} : { bias: arg("bias") }),
          out: store(name, types[0]!),
        });
        break;
      }
      case "gather": {
        if ((constantNumbers(planner, op, "axis")?.[0] ?? 0) !== 0) {
          planner.fail(`op "${op.name}" gathers along an axis other than 0`);
        }
        const table = weightOf(op, "x", step);
        planner.steps.push({
          op: "gather",
          table,
          indices: arg("indices"),
          out: store(name, types[0]!),
        });
        break;
      }
      case "add":
      case "sub":
      case "mul":
      case "real_div": {
        const kind = op.type === "real_div" ? "div" : op.type;
        planner.steps.push({
          op: "binary",
          kind,
          a: arg("x"),
          b: arg("y"),
          out: store(name, types[0]!),
        });
        break;
      }
      case "silu":
      case "sigmoid":
      case "rsqrt": {
        const eps = op.type === "rsqrt" ? constantNumbers(planner, op, "epsilon")?.[0] ?? 1e-12 : 0;
        planner.steps.push({
          op: "unary",
          kind: op.type,
          eps,
          x: arg("x"),
          out: store(name, types[0]!),
        });
        break;
      }
      case "softmax": {
        const rank = types[0]!.shape.length;
        const axis = constantNumbers(planner, op, "axis")?.[0] ?? -1;
        if (axis !== -1 && axis !== rank - 1) {
          planner.fail(`op "${op.name}" takes softmax over axis ${axis}, not the last`);
        }
        planner.steps.push({ op: "softmax", x: arg("x"), out: store(name, types[0]!) });
        break;
      }
      case "layer_norm": {
        const rank = types[0]!.shape.length;
        const axes = constantNumbers(planner, op, "axes") ?? [];
        if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== rank - 1)) {
          planner.fail(`op "${op.name}" normalizes axes [${axes}], not the last`);
        }
        const gamma = binding(op, "gamma", planner);
        const beta = binding(op, "beta", planner);
        planner.steps.push({
          op: "layer_norm",
          x: arg("x"),
          ...(gamma === undefined ? {} : { gamma: arg("gamma") }),
          ...(beta === undefined ? {} : { beta: arg("beta") }),
          eps: constantNumbers(planner, op, "epsilon")?.[0] ?? 1e-5,
          out: store(name, types[0]!),
        });
        break;
      }
      case "matmul": {
        const flag = (param: string) => (constantNumbers(planner, op, param)?.[0] ?? 0) !== 0;
        planner.steps.push({
          op: "matmul",
          a: arg("x"),
          b: arg("y"),
          transposeA: flag("transpose_x"),
          transposeB: flag("transpose_y"),
          out: store(name, types[0]!),
        });
        break;
      }
      case "transpose":
        planner.steps.push({
          op: "transpose",
          x: arg("x"),
          perm: constantNumbers(planner, op, "perm")!,
          out: store(name, types[0]!),
        });
        break;
      case "concat": {
        const inputs = (op.inputs.get("values") ?? []).map((_, k) =>
          planner.use(argumentName(op, "values", k, planner), step)
        );
        const rank = types[0]!.shape.length;
        const axis = constantNumbers(planner, op, "axis")![0]!;
        planner.steps.push({
          op: "concat",
          inputs,
          axis: axis < 0 ? axis + rank : axis,
          out: store(name, types[0]!),
        });
        break;
      }
      case "split": {
        const rank = types[0]!.shape.length;
        const axis = constantNumbers(planner, op, "axis")![0]!;
        const outs = op.outputs.map((o, k) => store(o.name, types[k]!));
        planner.steps.push({ op: "split", x: arg("x"), axis: axis < 0 ? axis + rank : axis, outs });
        break;
      }
      case "cast":
        planner.steps.push({ op: "cast", x: arg("x"), out: store(name, types[0]!) });
        break;
      case "reduce_mean": {
        const rank = planner.values.get(binding(op, "x", planner)!)!.type.shape.length;
        const axes = constantNumbers(planner, op, "axes")!.map((a) => (a < 0 ? a + rank : a));
        planner.steps.push({
          op: "reduce_mean",
          x: arg("x"),
          axes,
          out: store(name, types[0]!),
        });
        break;
      }
      case "reshape":
      case "expand_dims":
      case "squeeze": {
        // Row-major data does not move: the result is a view of its input, unless it is an output.
        if (outputIndex.has(name)) {
          planner.steps.push({ op: "copy", x: arg("x"), out: store(name, types[0]!) });
        } else {
          planner.values.set(name, {
            type: types[0]!,
            tensor: planner.view(types[0]!, arg("x")),
          });
        }
        break;
      }
      default:
        planner.fail(`op "${op.name}" has type "${op.type}", which the CPU backend does not run`);
    }
  }

  const outputIds = outputs.map((name) =>
    planner.values.get(name)?.tensor ?? planner.fail(`output "${name}" is never computed`)
  );
  const arenaBytes = assignArena(planner);
  return {
    version: 1,
    tensors: planner.tensors,
    inputs: fn.inputs.map((_, i) => i),
    inputNames,
    outputs: outputIds,
    outputNames: [...outputs],
    steps: planner.steps,
    arenaBytes,
  };
}

/**
 * Registers a `constexpr_blockwise_shift_scale` of constant data and scales as a quantized
 * weight, which the ops that read it take packed (a `dequantize` step only when another op reads
 * it).
 */
function registerQuantized(op: Operation, planner: Planner): void {
  if (op.inputs.has("offset")) {
    planner.fail(`op "${op.name}" has an offset, which llamane never writes`);
  }
  const types = inferOutputTypes(op.type, argumentsOf(op, planner));
  const data = planner.use(binding(op, "data", planner)!, 0);
  const scale = planner.use(binding(op, "scale", planner)!, 0);
  const dataShape = planner.tensors[data]!.shape;
  const scaleShape = planner.tensors[scale]!.shape;
  if (dataShape.length !== 2 || scaleShape[0] !== dataShape[0]) {
    planner.fail(
      `op "${op.name}" quantizes a [${dataShape}] tensor by [${scaleShape}], which is not row-wise`,
    );
  }
  planner.values.set(op.outputs[0]!.name, {
    type: types[0]!,
    quantized: { data, scale, group: dataShape[1]! / scaleShape[1]! },
  });
}

/**
 * Places each arena tensor at an offset no live tensor occupies: first fit over the tensors
 * alive during its lifetime (defined at its producing step, dead after its last use).
 */
function assignArena(planner: Planner): number {
  const producedAt = new Map<number, number>();
  planner.steps.forEach((step, index) => {
    const outs = "outs" in step ? step.outs : [step.out];
    for (const id of outs) if (!producedAt.has(id)) producedAt.set(id, index);
  });
  const placed: { start: number; end: number; from: number; to: number }[] = [];
  let total = 0;
  for (const id of planner.arenaTensors) {
    const tensor = planner.tensors[id]!;
    const bytes = Math.ceil((elementCount(tensor.shape) * BYTES[tensor.dtype]) / ALIGNMENT) *
      ALIGNMENT;
    const from = producedAt.get(id) ?? 0;
    const to = Math.max(planner.lastUse.get(id) ?? from, from);
    const busy = placed.filter((p) => p.from <= to && from <= p.to).sort((a, b) =>
      a.start - b.start
    );
    let offset = 0;
    for (const p of busy) {
      if (offset + bytes <= p.start) break;
      offset = Math.max(offset, p.end);
    }
    placed.push({ start: offset, end: offset + bytes, from, to });
    total = Math.max(total, offset + bytes);
    planner.tensors[id] = { ...tensor, storage: { kind: "arena", offset } };
  }
  for (const [view, root] of planner.viewRoots) {
    planner.tensors[view] = { ...planner.tensors[view]!, storage: planner.tensors[root]!.storage };
  }
  return total;
}
