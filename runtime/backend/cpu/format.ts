/**
 * The execution plan the native CPU backend runs, as JSON: the TypeScript side of
 * `ffi/cpu/src/plan/format.rs`, which parses these field names (the format: ffi/cpu/PLAN.md).
 *
 * @module
 */

/**
 * Element types the plan's tensors use, spelled as the plan wire format spells them (`f16` for
 * MIL's `fp16`...). Plans must stay byte-identical, so these strings stay as they are rather than
 * following the MIL names of `coreml/dtype.ts`.
 */
export type PlanDType = "f16" | "f32" | "i32" | "i8" | "i4" | "u4" | "u6";

/** Bytes per element of each plan dtype (`i4` and `u4` pack two to a byte, `u6` four to three). */
export const PLAN_DTYPE_BYTES: Readonly<Record<PlanDType, number>> = {
  f16: 2,
  f32: 4,
  i32: 4,
  i8: 1,
  i4: 0.5,
  u4: 0.5,
  u6: 0.75,
};

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

/**
 * A weight read by a fused op: dense, quantized with scales over groups of `group` inputs and
 * dequantized as `(data - offset) * scale` (no offset: zero), or palette indices (`u4`, `u6`) into
 * the palettes `lut` `[G, 1, 2^bits, 1]` of groups of rows.
 */
export interface PlanWeight {
  readonly data: number;
  readonly scale?: number;
  /** Values per scale along a row; the row length for per-channel scales. */
  readonly group?: number;
  /** Offsets shaped as the scales: integers of the data's dtype, or floats. */
  readonly offset?: number;
  readonly lut?: number;
}

/**
 * One step. In a plan, tensor fields (`T`) are indices into {@link Plan.tensors} and weights (`W`)
 * are {@link PlanWeight}s. The fusion matchers describe the fused steps they find in the same
 * shape, naming the program's values instead: the planner then views those values in the shapes
 * given here.
 */
export type PlanStep<T = number, W = PlanWeight> =
  | { readonly op: "linear"; readonly x: T; readonly weight: W; readonly bias?: T; readonly out: T }
  | {
    readonly op: "fused_linear";
    readonly x: T;
    /** Weights read side by side; each output is made of whole consecutive parts. */
    readonly parts: readonly { readonly weight: W; readonly bias?: T }[];
    readonly outs: readonly T[];
  }
  | {
    readonly op: "attention";
    /** `[L, H, D]`. */
    readonly q: T;
    /** Sources along the key axis, each `[Hkv, S_i, D]`. */
    readonly keys: readonly T[];
    readonly values: readonly T[];
    /** `[L, S]`, added to the scores. */
    readonly mask: T;
    readonly scale: number;
    /** `[L, H, D]`. */
    readonly out: T;
  }
  | {
    readonly op: "rope";
    /** `[L, H, D]`, rotated in halves. */
    readonly x: T;
    /** `[L, D / 2]`. */
    readonly cos: T;
    readonly sin: T;
    readonly out: T;
  }
  | { readonly op: "silu_mul"; readonly gate: T; readonly up: T; readonly out: T }
  | { readonly op: "gather"; readonly table: W; readonly indices: T; readonly out: T }
  | { readonly op: "dequantize"; readonly weight: W; readonly out: T }
  | {
    readonly op: "rms_norm";
    readonly x: T;
    readonly gain: T;
    readonly eps: number;
    readonly out: T;
  }
  | {
    readonly op: "layer_norm";
    readonly x: T;
    readonly gamma?: T;
    readonly beta?: T;
    readonly eps: number;
    readonly out: T;
  }
  | {
    readonly op: "binary";
    readonly kind: "add" | "sub" | "mul" | "div";
    readonly a: T;
    readonly b: T;
    readonly out: T;
  }
  | {
    readonly op: "unary";
    readonly kind: "silu" | "sigmoid" | "rsqrt";
    readonly eps: number;
    readonly x: T;
    readonly out: T;
  }
  | { readonly op: "softmax"; readonly x: T; readonly out: T }
  | {
    readonly op: "matmul";
    readonly a: T;
    readonly b: T;
    readonly transposeA: boolean;
    readonly transposeB: boolean;
    readonly out: T;
  }
  | { readonly op: "transpose"; readonly x: T; readonly perm: readonly number[]; readonly out: T }
  | { readonly op: "concat"; readonly inputs: readonly T[]; readonly axis: number; readonly out: T }
  | { readonly op: "split"; readonly x: T; readonly axis: number; readonly outs: readonly T[] }
  | { readonly op: "cast"; readonly x: T; readonly out: T }
  | { readonly op: "reduce_mean"; readonly x: T; readonly axes: readonly number[]; readonly out: T }
  | { readonly op: "copy"; readonly x: T; readonly out: T };

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

/** The tensors a step writes. */
export function stepOutputs<T, W>(step: PlanStep<T, W>): readonly T[] {
  return "outs" in step ? step.outs : [step.out];
}
