/**
 * Compiles one MIL function of a bundle piece into an execution plan for the native CPU backend
 * (`format.ts`; ffi/cpu/PLAN.md). This is the only place a program is interpreted on the
 * TypeScript side: it resolves constants, re-infers every shape for the call length asked for (so
 * a decode call with one real token computes one row, not L), finds the patterns of `fusion.ts`,
 * lowers every op or pattern through `lowering.ts`, and places every intermediate tensor in one
 * scratch arena (`arena.ts`).
 *
 * @module
 */

import type { MilFunction } from "../../../coreml/mil.ts";
import { shapeForCall } from "../../../bundle/io_names.ts";
import { PlanBuilder } from "./builder.ts";
import { findFusions, type Graph } from "./fusion.ts";
import { lowerFusion, OP_LOWERINGS } from "./lowering.ts";
import type { Plan } from "./format.ts";
import { checkScratchBudget } from "./scratch_budget.ts";

/** A function as the planner sees it at one call length, before any op is lowered. */
export interface TypedProgram {
  /** Every value typed for the call length; inputs and constants have their tensors. */
  readonly builder: PlanBuilder;
  /** The ops that compute, in program order, and what the fusion matchers know of them. */
  readonly graph: Graph;
}

/** Ops that define constants, registered before the rest are walked. */
const CONSTANT_OPS = new Set([
  "const",
  "constexpr_blockwise_shift_scale",
  "constexpr_lut_to_dense",
]);

/**
 * Registers `fn`'s inputs and constants and types every value for calls of `callLength` tokens.
 *
 * @param exportedLength the call length the function was exported with
 * @param outputs the function's outputs, in the order the caller passes their buffers
 * @throws {PlanError} for an op the CPU backend does not run
 */
export function typeProgram(
  fn: MilFunction,
  exportedLength: number,
  callLength: number,
  outputs: readonly string[],
): TypedProgram {
  const b = new PlanBuilder(outputs);
  fn.inputs.forEach((input, index) => {
    const shape = shapeForCall(input.name, input.type.shape, exportedLength, callLength);
    b.defineInput(input.name, { dtype: input.type.dtype, shape }, index);
  });
  // Constants and the dequantizations of constants have no other inputs, so they can all be
  // registered up front; the rest is walked in order.
  for (const op of fn.block.operations) if (op.type === "const") b.defineConstant(op);
  for (const op of fn.block.operations) {
    if (op.type === "constexpr_blockwise_shift_scale") b.defineQuantized(op);
    if (op.type === "constexpr_lut_to_dense") b.definePalettized(op);
  }
  const ops = fn.block.operations.filter((op) => !CONSTANT_OPS.has(op.type));
  // Every value's type at this call length, before anything is placed: fusions check shapes.
  for (const op of ops) {
    if (OP_LOWERINGS[op.type] === undefined) {
      b.fail(`op "${op.name}" has type "${op.type}", which the CPU backend does not run`);
    }
    b.inferTypes(op);
  }
  return { builder: b, graph: graphOf(ops, b) };
}

/**
 * Plans `fn` for calls of `callLength` tokens.
 *
 * @param exportedLength the call length the function was exported with
 * @param outputs the function's outputs, in the order the caller passes their buffers
 * @throws {PlanError} for an op the CPU backend does not run, a program it cannot place, or one
 *   whose scratch memory its inputs, outputs and constants do not back (`scratch_budget.ts`)
 */
export function planFunction(
  fn: MilFunction,
  exportedLength: number,
  callLength: number,
  outputs: readonly string[],
): Plan {
  const { builder: b, graph } = typeProgram(fn, exportedLength, callLength, outputs);
  const fusions = findFusions(graph);
  const fusionAt = new Map(fusions.map((f) => [f.at, f.fusion]));
  const absorbed = new Set(fusions.flatMap((f) => f.absorbs));
  graph.ops.forEach((op, i) => {
    const fusion = fusionAt.get(i);
    if (fusion !== undefined) lowerFusion(fusion, b);
    else if (!absorbed.has(i)) OP_LOWERINGS[op.type]!(op, b);
  });
  const plan = b.finish(fn.inputs.map((i) => i.name));
  checkScratchBudget(plan);
  return plan;
}

/** The matchers' view of the program: its ops, who reads and produces each value, and types. */
function graphOf(ops: MilFunction["block"]["operations"], b: PlanBuilder): Graph {
  // Per value, the index of the op behind each binding that reads it (an op binding it twice is
  // listed twice), and the op that produces it.
  const readers = new Map<string, number[]>();
  const producers = new Map<string, number>();
  ops.forEach((op, index) => {
    for (const list of op.inputs.values()) {
      for (const bound of list) {
        if (typeof bound !== "string") continue;
        const known = readers.get(bound);
        if (known === undefined) readers.set(bound, [index]);
        else known.push(index);
      }
    }
    for (const o of op.outputs) producers.set(o.name, index);
  });
  return {
    ops,
    arg: (op, param, index) => b.arg(op, param, index),
    producer: (name) => producers.get(name),
    consumers: (name) => readers.get(name) ?? [],
    isOutput: (name) => b.isOutput(name),
    type: (name) => b.type(name),
    constant: (name) => b.constant(name),
    weightFormat: (name) => b.weightFormat(name),
  };
}
