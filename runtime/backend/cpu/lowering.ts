/**
 * How each MIL op, and each fused pattern of `fusion.ts`, becomes plan steps: one table entry per
 * op type, so the ops the CPU backend runs are the keys of {@link OP_LOWERINGS}. A lowering reads
 * its operands and stores its results through the {@link PlanBuilder}, which decides where their
 * bytes live.
 *
 * @module
 */

import type { Operation } from "../../../coreml/mil.ts";
import type { PlanBuilder } from "./builder.ts";
import type { Fusion } from "./fusion.ts";

/** Emits the steps of one op (none for a reshape that only views its input). */
export type OpLowering = (op: Operation, b: PlanBuilder) => void;

/** The tensor of `op`'s single argument for `param`, read by the step being lowered. */
function input(op: Operation, b: PlanBuilder, param: string): number {
  return b.read(b.only(op, param)!);
}

/** A new tensor for `op`'s result `k`. */
function result(op: Operation, b: PlanBuilder, k = 0): number {
  return b.store(op.outputs[k]!.name);
}

/** `axis` as a non-negative index into `rank` axes. */
function positiveAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** An element-wise op of two operands, broadcast. */
function binary(kind: "add" | "sub" | "mul" | "div"): OpLowering {
  return (op, b) =>
    b.emit({ op: "binary", kind, a: input(op, b, "x"), b: input(op, b, "y"), out: result(op, b) });
}

/** An element-wise op of one operand; only `rsqrt` has an epsilon. */
function unary(kind: "silu" | "sigmoid" | "rsqrt"): OpLowering {
  return (op, b) => {
    const eps = kind === "rsqrt" ? b.numbers(op, "epsilon")?.[0] ?? 1e-12 : 0;
    b.emit({ op: "unary", kind, eps, x: input(op, b, "x"), out: result(op, b) });
  };
}

/** Row-major data does not move: the result is a view of its input, unless it is an output. */
function view(op: Operation, b: PlanBuilder): void {
  const name = op.outputs[0]!.name;
  if (b.isOutput(name)) b.emit({ op: "copy", x: input(op, b, "x"), out: result(op, b) });
  else b.alias(name, b.only(op, "x")!);
}

/** The lowering of every op type the CPU backend runs. */
export const OP_LOWERINGS: Readonly<Record<string, OpLowering>> = {
  add: binary("add"),
  sub: binary("sub"),
  mul: binary("mul"),
  real_div: binary("div"),
  silu: unary("silu"),
  sigmoid: unary("sigmoid"),
  rsqrt: unary("rsqrt"),
  reshape: view,
  expand_dims: view,
  squeeze: view,

  linear(op, b) {
    const bias = b.only(op, "bias");
    const x = input(op, b, "x");
    const weight = b.weight(b.only(op, "weight")!);
    b.emit({
      op: "linear",
      x,
      weight,
      ...(bias === undefined ? {} : { bias: b.read(bias) }),
      out: result(op, b),
    });
  },

  gather(op, b) {
    if ((b.numbers(op, "axis")?.[0] ?? 0) !== 0) {
      b.fail(`op "${op.name}" gathers along an axis other than 0`);
    }
    const table = b.weight(b.only(op, "x")!);
    b.emit({ op: "gather", table, indices: input(op, b, "indices"), out: result(op, b) });
  },

  softmax(op, b) {
    const rank = b.type(op.outputs[0]!.name).shape.length;
    const axis = b.numbers(op, "axis")?.[0] ?? -1;
    if (axis !== -1 && axis !== rank - 1) {
      b.fail(`op "${op.name}" takes softmax over axis ${axis}, not the last`);
    }
    b.emit({ op: "softmax", x: input(op, b, "x"), out: result(op, b) });
  },

  layer_norm(op, b) {
    const rank = b.type(op.outputs[0]!.name).shape.length;
    const axes = b.numbers(op, "axes") ?? [];
    if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== rank - 1)) {
      b.fail(`op "${op.name}" normalizes axes [${axes}], not the last`);
    }
    const gamma = b.only(op, "gamma");
    const beta = b.only(op, "beta");
    b.emit({
      op: "layer_norm",
      x: input(op, b, "x"),
      ...(gamma === undefined ? {} : { gamma: b.read(gamma) }),
      ...(beta === undefined ? {} : { beta: b.read(beta) }),
      eps: b.numbers(op, "epsilon")?.[0] ?? 1e-5,
      out: result(op, b),
    });
  },

  matmul(op, b) {
    const flag = (param: string) => (b.numbers(op, param)?.[0] ?? 0) !== 0;
    b.emit({
      op: "matmul",
      a: input(op, b, "x"),
      b: input(op, b, "y"),
      transposeA: flag("transpose_x"),
      transposeB: flag("transpose_y"),
      out: result(op, b),
    });
  },

  transpose(op, b) {
    b.emit({
      op: "transpose",
      x: input(op, b, "x"),
      perm: b.numbers(op, "perm")!,
      out: result(op, b),
    });
  },

  concat(op, b) {
    const inputs = (op.inputs.get("values") ?? []).map((_, k) => b.read(b.arg(op, "values", k)!));
    const rank = b.type(op.outputs[0]!.name).shape.length;
    const axis = positiveAxis(b.numbers(op, "axis")![0]!, rank);
    b.emit({ op: "concat", inputs, axis, out: result(op, b) });
  },

  split(op, b) {
    const rank = b.type(op.outputs[0]!.name).shape.length;
    const axis = positiveAxis(b.numbers(op, "axis")![0]!, rank);
    const outs = op.outputs.map((_, k) => result(op, b, k));
    b.emit({ op: "split", x: input(op, b, "x"), axis, outs });
  },

  cast(op, b) {
    b.emit({ op: "cast", x: input(op, b, "x"), out: result(op, b) });
  },

  reduce_mean(op, b) {
    const rank = b.type(b.only(op, "x")!).shape.length;
    const axes = b.numbers(op, "axes")!.map((a) => positiveAxis(a, rank));
    b.emit({ op: "reduce_mean", x: input(op, b, "x"), axes, out: result(op, b) });
  },
};

/** Emits the step of one fused pattern, viewing program values in the step's shapes. */
type FusionLowering<F extends Fusion> = (fusion: F, b: PlanBuilder) => void;

const FUSION_LOWERINGS: {
  readonly [Op in Fusion["op"]]: FusionLowering<Extract<Fusion, { op: Op }>>;
} = {
  fused_linear(fusion, b) {
    const x = b.read(fusion.x);
    const parts = fusion.parts.map((part) => ({
      weight: b.weight(part.weight),
      ...(part.bias === undefined ? {} : { bias: b.read(part.bias) }),
    }));
    const outs = fusion.outs.map((name) => b.store(name));
    b.emit({ op: "fused_linear", x, parts, outs });
  },

  attention(fusion, b) {
    // The program's q is [1, L, H, D], its sources [1, Hkv, S_i, D], its mask [1, L, S].
    const [, l, h, d] = b.type(fusion.q).shape as number[];
    const sources = (names: readonly string[]) =>
      names.map((name) => {
        const [, hkv, s, dd] = b.type(name).shape as number[];
        return b.readAs(name, [hkv!, s!, dd!]);
      });
    const [, ml, ms] = b.type(fusion.mask).shape as number[];
    b.emit({
      op: "attention",
      q: b.readAs(fusion.q, [l!, h!, d!]),
      keys: sources(fusion.keys),
      values: sources(fusion.values),
      mask: b.readAs(fusion.mask, [ml!, ms!]),
      scale: fusion.scale,
      out: b.storeAs(fusion.out, [l!, h!, d!]),
    });
  },

  rope(fusion, b) {
    // The program's x is [1, L, H, D], its tables [1, L, 1, D / 2].
    const [, l, h, d] = b.type(fusion.x).shape as number[];
    b.emit({
      op: "rope",
      x: b.readAs(fusion.x, [l!, h!, d!]),
      cos: b.readAs(fusion.cos, [l!, d! / 2]),
      sin: b.readAs(fusion.sin, [l!, d! / 2]),
      out: b.storeAs(fusion.out, [l!, h!, d!]),
    });
  },

  silu_mul(fusion, b) {
    b.emit({
      op: "silu_mul",
      gate: b.read(fusion.gate),
      up: b.read(fusion.up),
      out: b.store(fusion.out),
    });
  },

  rms_norm(fusion, b) {
    const x = b.read(fusion.x);
    const gain = b.read(fusion.gain);
    b.emit({
      op: "rms_norm",
      x,
      gain,
      eps: fusion.eps,
      out: b.store(fusion.out, b.type(fusion.x)),
    });
  },
};

/** Emits the step of a fusion. */
export function lowerFusion(fusion: Fusion, b: PlanBuilder): void {
  (FUSION_LOWERINGS[fusion.op] as FusionLowering<Fusion>)(fusion, b);
}
