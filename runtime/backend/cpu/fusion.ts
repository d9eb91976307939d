/**
 * Finds the op patterns of the exporter's graphs that the CPU backend runs as one fused step
 * (ffi/cpu/PLAN.md): linears that read the same input, with the concatenation of a split layer's
 * pieces; attention from the query heads to the attended values, reading the KV cache and the
 * call's new entries where they lie; half-split RoPE; SwiGLU's `silu(a) * b`; and the overflow-safe
 * RMSNorm. Each matcher checks the exact structure the exporter writes (op types, constants,
 * shapes, and that no intermediate value has another reader or is a function output); anything
 * else is left to the generic steps.
 *
 * @module
 */

import type { Operation } from "../../../coreml/mil.ts";
import type { TensorType } from "../../../coreml/tensor.ts";
import type { PlanStep } from "./format.ts";

/** What the matchers need to know about the function being planned. */
export interface Graph {
  /** The non-constant ops, in program order. */
  readonly ops: readonly Operation[];
  /** Value name bound to `param` (argument `index`) of `op`; undefined when absent. */
  arg(op: Operation, param: string, index?: number): string | undefined;
  /** Index in `ops` of the op that produces the value, if an op does. */
  producer(name: string): number | undefined;
  /** Indices in `ops` of the ops that read the value, one per binding that reads it. */
  consumers(name: string): readonly number[];
  /** Whether the value is a function output. */
  isOutput(name: string): boolean;
  /** The value's type at the call length being planned. */
  type(name: string): TensorType;
  /** The values of a constant, if it is one. */
  constant(name: string): readonly number[] | undefined;
  /** A key equal for two weights exactly when the linear kernels read them the same way. */
  weightFormat(name: string): string;
}

/**
 * A fused step, as the plan has it but naming program values (weights included) instead of plan
 * tensors. The program's values may have other ranks than the step's operands (attention's `q` is
 * `[1, L, H, D]` in the program and `[L, H, D]` in the step): the planner views them in the step's
 * shapes.
 */
export type Fusion = Extract<
  PlanStep<string, string>,
  { readonly op: "fused_linear" | "attention" | "rope" | "silu_mul" | "rms_norm" }
>;

/** A fusion with the op it is emitted at and every op it replaces (that one included). */
export interface Placed {
  readonly fusion: Fusion;
  readonly at: number;
  readonly absorbs: readonly number[];
}

const same = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/** Whether a value is read by exactly one binding and is not a function output. */
function privateValue(g: Graph, name: string | undefined): name is string {
  return name !== undefined && g.consumers(name).length === 1 && !g.isOutput(name);
}

/** The op producing `name` if it has type `type`. */
function producedBy(g: Graph, name: string | undefined, type: string): Operation | undefined {
  const index = name === undefined ? undefined : g.producer(name);
  const op = index === undefined ? undefined : g.ops[index];
  return op?.type === type ? op : undefined;
}

/** The only op reading `name`, if it has type `type`. */
function soleConsumer(g: Graph, name: string, type: string): number | undefined {
  const [reader] = g.consumers(name);
  return privateValue(g, name) && g.ops[reader!]!.type === type ? reader : undefined;
}

function scalar(g: Graph, op: Operation, param: string): number | undefined {
  const name = g.arg(op, param);
  const value = name === undefined ? undefined : g.constant(name);
  return value?.length === 1 ? value[0] : undefined;
}

function lastAxis(g: Graph, op: Operation, rank: number): boolean {
  const axis = scalar(g, op, "axis");
  return axis === -1 || axis === rank - 1;
}

/**
 * Linears grouped by input and weight format. A concatenation along the last axis of linears of
 * one group (a layer the exporter split into pieces), each read by nothing else, becomes one
 * output; every other linear of the group is an output of its own. Groups of one linear that is
 * not split stay plain `linear` steps.
 */
function linearGroups(g: Graph): Placed[] {
  const groups = new Map<string, number[]>();
  g.ops.forEach((op, i) => {
    if (op.type !== "linear") return;
    const key = `${g.arg(op, "x")}\u0000${g.weightFormat(g.arg(op, "weight")!)}`;
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  const placed: Placed[] = [];
  for (const members of groups.values()) {
    const inGroup = new Set(members);
    /** Per output of the step, its name and the linears whose results make it up, in order. */
    const outputs: { name: string; linears: readonly number[] }[] = [];
    const absorbs = [...members];
    const claimed = new Set<number>();
    for (const i of members) {
      if (claimed.has(i)) continue;
      const result = g.ops[i]!.outputs[0]!.name;
      const concat = soleConsumer(g, result, "concat");
      const op = concat === undefined ? undefined : g.ops[concat]!;
      const values = op?.inputs.get("values") ?? [];
      const pieces = values.map((v) => (typeof v === "string" ? g.producer(v) : undefined));
      const split = op !== undefined &&
        lastAxis(g, op, g.type(op.outputs[0]!.name).shape.length) &&
        pieces.every((p, k) =>
          p !== undefined && inGroup.has(p) && !claimed.has(p) &&
          privateValue(g, values[k] as string)
        );
      if (split) {
        const linears = pieces as number[];
        linears.forEach((p) => claimed.add(p));
        outputs.push({ name: op.outputs[0]!.name, linears });
        absorbs.push(concat!);
      } else {
        claimed.add(i);
        outputs.push({ name: result, linears: [i] });
      }
    }
    if (members.length === 1 && outputs[0]!.linears.length === 1) continue;
    const parts = outputs.flatMap((o) =>
      o.linears.map((i) => {
        const bias = g.arg(g.ops[i]!, "bias");
        return { weight: g.arg(g.ops[i]!, "weight")!, ...(bias === undefined ? {} : { bias }) };
      })
    );
    placed.push({
      fusion: {
        op: "fused_linear",
        x: g.arg(g.ops[members[0]!]!, "x")!,
        parts,
        outs: outputs.map((o) => o.name),
      },
      at: members[0]!,
      absorbs,
    });
  }
  return placed;
}

/** Keys or values over cache then call: `reshape(concat(sources, axis 2), [Hkv, 1, S, D])`. */
function keyAxisSources(g: Graph, grouped: string | undefined): {
  sources: string[];
  ops: number[];
} | undefined {
  if (!privateValue(g, grouped)) return undefined;
  const reshape = producedBy(g, grouped, "reshape");
  const joined = reshape === undefined ? undefined : g.arg(reshape, "x");
  const concat = producedBy(g, joined, "concat");
  if (reshape === undefined || concat === undefined || !privateValue(g, joined)) return undefined;
  const [hkv, one, s, d] = g.type(grouped).shape;
  const axis = scalar(g, concat, "axis");
  if (one !== 1 || (axis !== 2 && axis !== -2)) return undefined;
  const values = concat.inputs.get("values") ?? [];
  if (values.some((v) => typeof v !== "string")) return undefined;
  const sources = values as string[];
  const fits = sources.every((v) => {
    const [b, h, , dd] = g.type(v).shape;
    return g.type(v).shape.length === 4 && b === 1 && h === hkv && dd === d;
  });
  const total = sources.reduce((n, v) => n + g.type(v).shape[2]!, 0);
  if (!fits || total !== s) return undefined;
  return { sources, ops: [g.producer(grouped)!, g.producer(joined!)!] };
}

/**
 * The exporter's attention (export/graph/attention.ts), anchored at the scores matmul:
 * `q = mul(transpose(reshape(qRope, [L, Hkv, G, D]), [1, 2, 0, 3]), scale)`,
 * `scores = matmul(q, keys, transpose_y)`, `add(scores, mask)`, `softmax(-1)`,
 * `matmul(probs, values)`, `transpose([2, 0, 1, 3])`.
 */
function attention(g: Graph, index: number): Placed | undefined {
  const scoresOp = g.ops[index]!;
  if (scoresOp.type !== "matmul") return undefined;
  if (scalar(g, scoresOp, "transpose_x") !== 0 || scalar(g, scoresOp, "transpose_y") !== 1) {
    return undefined;
  }
  const qScaled = g.arg(scoresOp, "x");
  const scaleOp = producedBy(g, qScaled, "mul");
  const scale = scaleOp === undefined ? undefined : scalar(g, scaleOp, "y");
  const qHeads = scaleOp === undefined ? undefined : g.arg(scaleOp, "x");
  const transposeOp = producedBy(g, qHeads, "transpose");
  const qGrouped = transposeOp === undefined ? undefined : g.arg(transposeOp, "x");
  const reshapeOp = producedBy(g, qGrouped, "reshape");
  const q = reshapeOp === undefined ? undefined : g.arg(reshapeOp, "x");
  if (
    scale === undefined || transposeOp === undefined || q === undefined ||
    ![qScaled, qHeads, qGrouped].every((v) => privateValue(g, v)) ||
    !same(g.constant(g.arg(transposeOp, "perm")!) ?? [], [1, 2, 0, 3])
  ) return undefined;
  const keys = keyAxisSources(g, g.arg(scoresOp, "y"));
  const scores = scoresOp.outputs[0]!.name;
  const addIndex = soleConsumer(g, scores, "add");
  const addOp = addIndex === undefined ? undefined : g.ops[addIndex]!;
  if (keys === undefined || addOp === undefined || g.arg(addOp, "x") !== scores) return undefined;
  const mask = g.arg(addOp, "y")!;
  const softmaxIndex = soleConsumer(g, addOp.outputs[0]!.name, "softmax");
  const softmaxOp = softmaxIndex === undefined ? undefined : g.ops[softmaxIndex]!;
  if (softmaxOp === undefined || !lastAxis(g, softmaxOp, 4)) return undefined;
  const probs = softmaxOp.outputs[0]!.name;
  const pvIndex = soleConsumer(g, probs, "matmul");
  const pvOp = pvIndex === undefined ? undefined : g.ops[pvIndex]!;
  if (
    pvOp === undefined || g.arg(pvOp, "x") !== probs || scalar(g, pvOp, "transpose_x") !== 0 ||
    scalar(g, pvOp, "transpose_y") !== 0
  ) return undefined;
  const values = keyAxisSources(g, g.arg(pvOp, "y"));
  const attended = pvOp.outputs[0]!.name;
  const outIndex = soleConsumer(g, attended, "transpose");
  const outOp = outIndex === undefined ? undefined : g.ops[outIndex]!;
  if (
    values === undefined || outOp === undefined ||
    !same(g.constant(g.arg(outOp, "perm")!) ?? [], [2, 0, 1, 3])
  ) return undefined;
  const out = outOp.outputs[0]!.name;
  const [one, l, h, d] = g.type(q).shape;
  const [hkv, groups, lq, s] = g.type(scores).shape;
  const [mb, ml, ms] = g.type(mask).shape;
  const shapesFit = g.type(q).shape.length === 4 && one === 1 && h === hkv! * groups! &&
    lq === l && same(g.type(qGrouped!).shape, [l!, hkv!, groups!, d!]) &&
    g.type(mask).shape.length === 3 && mb === 1 && ml === l && ms === s &&
    same(g.type(out).shape, [l!, hkv!, groups!, d!]) && !g.isOutput(out);
  if (!shapesFit) return undefined;
  return {
    fusion: {
      op: "attention",
      q,
      keys: keys.sources,
      values: values.sources,
      mask,
      scale,
      out,
    },
    at: outIndex!,
    absorbs: [
      g.producer(qGrouped!)!,
      g.producer(qHeads!)!,
      g.producer(qScaled!)!,
      ...keys.ops,
      ...values.ops,
      index,
      addIndex!,
      softmaxIndex!,
      pvIndex!,
      outIndex!,
    ],
  };
}

/**
 * The exporter's RoPE (export/graph/rope.ts), anchored at its concat: `[x1, x2] = split(x)`,
 * `concat([x1 cos - x2 sin, x2 cos + x1 sin], -1)`.
 */
function rope(g: Graph, index: number): Placed | undefined {
  const concat = g.ops[index]!;
  const values = concat.inputs.get("values") ?? [];
  const out = concat.outputs[0]!.name;
  // The step computes in [L, H, D]: the rotated heads are a view of it, never an output buffer.
  if (
    concat.type !== "concat" || values.length !== 2 || !lastAxis(g, concat, 4) || g.isOutput(out)
  ) return undefined;
  const [firstName, secondName] = values as string[];
  const first = producedBy(g, firstName, "sub");
  const second = producedBy(g, secondName, "add");
  if (first === undefined || second === undefined) return undefined;
  const products = [
    g.arg(first, "x"),
    g.arg(first, "y"),
    g.arg(second, "x"),
    g.arg(second, "y"),
  ];
  const muls = products.map((p) => producedBy(g, p, "mul"));
  if (muls.some((m) => m === undefined)) return undefined;
  const [x1cos, x2sin, x2cos, x1sin] = muls as Operation[];
  const [x1, x2] = [g.arg(x1cos!, "x"), g.arg(x2sin!, "x")];
  const [cos, sin] = [g.arg(x1cos!, "y")!, g.arg(x2sin!, "y")!];
  const split = producedBy(g, x1, "split");
  const wired = split !== undefined && split.outputs.length === 2 &&
    split.outputs[0]!.name === x1 && split.outputs[1]!.name === x2 &&
    g.arg(x2cos!, "x") === x2 && g.arg(x2cos!, "y") === cos &&
    g.arg(x1sin!, "x") === x1 && g.arg(x1sin!, "y") === sin &&
    g.consumers(x1!).length === 2 && g.consumers(x2!).length === 2 && !g.isOutput(x1!) &&
    !g.isOutput(x2!) &&
    [firstName, secondName, ...products].every((v) => privateValue(g, v));
  if (!wired || !lastAxis(g, split, 4)) return undefined;
  const x = g.arg(split, "x")!;
  const [one, l, , d] = g.type(x).shape;
  const table = [1, l!, 1, d! / 2];
  if (
    g.type(x).shape.length !== 4 || one !== 1 || d! % 2 !== 0 ||
    !same(g.type(cos).shape, table) || !same(g.type(sin).shape, table)
  ) return undefined;
  return {
    fusion: { op: "rope", x, cos, sin, out },
    at: index,
    absorbs: [
      g.producer(x1!)!,
      ...products.map((p) => g.producer(p!)!),
      g.producer(firstName!)!,
      g.producer(secondName!)!,
      index,
    ],
  };
}

/** SwiGLU's gate: `mul(silu(a), b)` with a, b and the result of one shape. */
function siluMul(g: Graph, index: number): Placed | undefined {
  const mul = g.ops[index]!;
  if (mul.type !== "mul") return undefined;
  const gated = g.arg(mul, "x");
  const silu = producedBy(g, gated, "silu");
  const up = g.arg(mul, "y");
  if (silu === undefined || up === undefined || !privateValue(g, gated)) return undefined;
  const gate = g.arg(silu, "x")!;
  const out = mul.outputs[0]!.name;
  const shape = g.type(out).shape;
  if (!same(g.type(gate).shape, shape) || !same(g.type(up).shape, shape)) return undefined;
  return {
    fusion: { op: "silu_mul", gate, up, out },
    at: index,
    absorbs: [g.producer(gated!)!, index],
  };
}

/**
 * The exporter's overflow-safe RMSNorm (export/graph/norm.ts), anchored at its last op:
 * `neg = mul(x, -1)`, `both = concat([x, neg], -1)`, `n = layer_norm(both, [-1])`,
 * `[half, _] = split(n, 2)`, `out = mul(half, gain)`. Over `[x, -x]` the mean is 0 and the
 * variance `mean(x^2)`, so `half` is `x / sqrt(mean(x^2) + eps)`.
 */
function rmsNorm(g: Graph, index: number): Placed | undefined {
  const scale = g.ops[index]!;
  if (scale.type !== "mul") return undefined;
  const half = g.arg(scale, "x");
  const split = producedBy(g, half, "split");
  const normalized = split === undefined ? undefined : g.arg(split, "x");
  const norm = producedBy(g, normalized, "layer_norm");
  const mirrored = norm === undefined ? undefined : g.arg(norm, "x");
  const concat = producedBy(g, mirrored, "concat");
  const pair = concat?.inputs.get("values")?.length === 2;
  const x = pair ? g.arg(concat!, "values", 0) : undefined;
  const negated = pair ? g.arg(concat!, "values", 1) : undefined;
  const neg = producedBy(g, negated, "mul");
  if (
    split === undefined || norm === undefined || concat === undefined || neg === undefined ||
    x === undefined || g.arg(neg, "x") !== x ||
    scalar(g, neg, "y") !== -1 || split.outputs.length !== 2 || split.outputs[0]!.name !== half ||
    norm.inputs.has("gamma") || norm.inputs.has("beta")
  ) return undefined;
  const rest = split.outputs[1]!.name;
  const shape = g.type(x).shape;
  const rank = shape.length;
  const eps = g.arg(norm, "epsilon") === undefined ? 1e-5 : scalar(g, norm, "epsilon");
  const axes = g.constant(g.arg(norm, "axes")!) ?? [];
  const out = scale.outputs[0]!.name;
  const intermediates = [negated!, mirrored!, normalized!, half];
  const fits = intermediates.every((v) => privateValue(g, v)) && g.consumers(rest).length === 0 &&
    !g.isOutput(rest) && eps !== undefined && lastAxis(g, concat, rank) &&
    lastAxis(g, split, rank) && axes.length === 1 && (axes[0] === -1 || axes[0] === rank - 1) &&
    same(g.type(half).shape, shape) && same(g.type(out).shape, shape);
  if (!fits) return undefined;
  return {
    fusion: { op: "rms_norm", x, gain: g.arg(scale, "y")!, eps, out },
    at: index,
    absorbs: [...intermediates.map((v) => g.producer(v)!), index],
  };
}

/**
 * Every fusion in the graph. An op belongs to at most one: a match that would absorb an op
 * already taken is dropped, and those ops run as generic steps.
 */
export function findFusions(g: Graph): Placed[] {
  const candidates = [
    ...linearGroups(g),
    ...g.ops.flatMap((_, i) => [attention(g, i), rope(g, i), siluMul(g, i), rmsNorm(g, i)]),
  ];
  const taken = new Set<number>();
  const placed: Placed[] = [];
  for (const c of candidates) {
    if (c === undefined || c.absorbs.some((i) => taken.has(i))) continue;
    c.absorbs.forEach((i) => taken.add(i));
    placed.push(c);
  }
  return placed;
}
