/**
 * Rotary position embedding inside the graph, in the half-split layout (see `ropeSourceRow`): a
 * head `[x1 | x2]` becomes `[x1 cos - x2 sin | x2 cos + x1 sin]`, with cos and sin given as
 * inputs for the call's positions.
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import type { GraphEmitter } from "./emitter.ts";

/** The call's RoPE tables reshaped once to broadcast over heads: `[1, L, 1, hd/2]`. */
export interface RopeTables {
  readonly cos: Var;
  readonly sin: Var;
}

/** Reshapes the `[L, hd/2]` inputs for broadcasting. */
export function emitRopeTables(e: GraphEmitter, freqsCos: Var, freqsSin: Var): RopeTables {
  const half = freqsCos.type.shape[1]!;
  const shape = e.ints([1, -1, 1, half]);
  return {
    cos: e.op("reshape", { x: freqsCos, shape }, "rope_cos"),
    sin: e.op("reshape", { x: freqsSin, shape }, "rope_sin"),
  };
}

/** Rotates `x` `[1, L, heads, hd]`. */
export function emitRope(e: GraphEmitter, x: Var, tables: RopeTables, name: string): Var {
  const [x1, x2] = e.multiOp("split", { x, axis: e.int(-1), num_splits: e.int(2) });
  const mul = (a: Var, b: Var, suffix: string) => e.op("mul", { x: a, y: b }, `${name}_${suffix}`);
  const first = e.op(
    "sub",
    { x: mul(x1!, tables.cos, "x1cos"), y: mul(x2!, tables.sin, "x2sin") },
    `${name}_first`,
  );
  const second = e.op(
    "add",
    { x: mul(x2!, tables.cos, "x2cos"), y: mul(x1!, tables.sin, "x1sin") },
    `${name}_second`,
  );
  return e.op("concat", { values: [first, second], axis: e.int(-1) }, name);
}
