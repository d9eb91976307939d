/**
 * The bound on a plan's scratch memory. Shapes inside a program are inferred from its inputs and
 * constants, so a few hundred KB of constants broadcast against each other can ask for tens of
 * GB. A plan may use at most {@link SCRATCH_FACTOR} times the bytes its call really binds or
 * reads (inputs, outputs, weights, inline constants), or {@link SCRATCH_FLOOR} bytes if that is
 * more: a Llama's scratch is a small fraction of its weights and caches, since attention scores
 * never reach the arena.
 *
 * @module
 */

import { elementCount } from "../../../shape.ts";
import { PlanError } from "./builder.ts";
import { type Plan, PLAN_DTYPE_BYTES, type PlanTensor } from "./format.ts";

/** Scratch bytes allowed per byte the call binds or reads. */
export const SCRATCH_FACTOR = 16;
/** Scratch bytes any plan may use. */
export const SCRATCH_FLOOR = 256 * 2 ** 20;

function bytesOf(tensor: PlanTensor): number {
  return Math.ceil(elementCount(tensor.shape) * PLAN_DTYPE_BYTES[tensor.dtype]);
}

/** The bytes `plan` binds or reads, each input, output and weight blob counted once. */
export function backedBytes(plan: Plan): number {
  const seen = new Set<string>();
  let total = 0;
  for (const tensor of plan.tensors) {
    const { storage } = tensor;
    const key = storage.kind === "arena" || storage.kind === "inline"
      ? undefined
      : storage.kind === "weight"
      ? `weight ${storage.offset}`
      : `${storage.kind} ${storage.index}`;
    if (storage.kind === "arena" || (key !== undefined && seen.has(key))) continue;
    if (key !== undefined) seen.add(key);
    total += bytesOf(tensor);
  }
  return total;
}

/**
 * Refuses a plan whose scratch memory exceeds its budget.
 *
 * @throws {PlanError} naming the bytes asked for and allowed
 */
export function checkScratchBudget(plan: Plan): void {
  const allowed = Math.max(SCRATCH_FLOOR, SCRATCH_FACTOR * backedBytes(plan));
  if (plan.arenaBytes > allowed) {
    throw new PlanError(
      `its values need ${plan.arenaBytes} bytes of scratch memory, more than the ${allowed} ` +
        `allowed (${SCRATCH_FACTOR} times the ${backedBytes(plan)} bytes of its inputs, outputs ` +
        "and constants): the program's shapes are not backed by its files",
    );
  }
}
