/**
 * The PyTorch oracle of the exporter's graph parts, under testdata/graph_parts (made by
 * scripts/oracle/make_graph_parts.py): each part's inputs, checkpoint tensors and expected outputs.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TensorType } from "../coreml/tensor.ts";
import type { ModelConfig } from "../llama/config.ts";
import type { MemoryTensor, Values } from "./small_program.ts";

const ROOT = new URL("../testdata/graph_parts/", import.meta.url);

/** A tensor of the fixture; JSON has no infinities, so the generator writes -inf as null. */
interface TensorJson {
  readonly shape: number[];
  readonly values: (number | null)[];
}

/** One part: what to feed the graph and what PyTorch computed. */
export interface GraphPart {
  readonly config: Partial<ModelConfig>;
  readonly callLength: number;
  readonly inputTypes: Readonly<Record<string, TensorType>>;
  readonly inputs: Values;
  readonly tensors: Readonly<Record<string, MemoryTensor>>;
  readonly outputs: Readonly<Record<string, Float32Array>>;
}

const floats = (t: TensorJson) => Float32Array.from(t.values, (v) => v ?? -Infinity);
const mapValues = <T, U>(record: Record<string, T>, f: (value: T) => U): Record<string, U> =>
  Object.fromEntries(Object.entries(record).map(([name, value]) => [name, f(value)]));

/** Reads part `name` (`rms_norm`, `rope`, `attention`, `feed_forward`, `embedding`, `head`). */
export async function graphPart(name: string): Promise<GraphPart> {
  const json = JSON.parse(await Deno.readTextFile(new URL(`${name}.json`, ROOT)));
  const inputs = json.inputs as Record<string, TensorJson>;
  // Token ids are the only integer input.
  const isIds = (input: string) => input === "tokens";
  return {
    config: json.config,
    callLength: json.callLength,
    inputTypes: Object.fromEntries(
      Object.entries(inputs).map((
        [input, t],
      ) => [input, { dtype: isIds(input) ? "int32" : "fp32", shape: t.shape }]),
    ),
    inputs: Object.fromEntries(
      Object.entries(inputs).map((
        [input, t],
      ) => [input, isIds(input) ? Int32Array.from(t.values, Number) : floats(t)]),
    ),
    tensors: mapValues(json.tensors as Record<string, TensorJson>, (t) => ({
      shape: t.shape,
      values: floats(t),
    })),
    outputs: mapValues(json.outputs as Record<string, TensorJson>, floats),
  };
}

/** Asserts `actual` is `expected` within `tolerance` times the largest expected magnitude. */
export function assertClose(
  actual: Float32Array | Int32Array | undefined,
  expected: Float32Array,
  tolerance: number,
  what: string,
): void {
  assert.ok(actual !== undefined, `${what}: not computed`);
  assert.equal(actual.length, expected.length, `${what}: length`);
  const scale = Math.max(1, ...expected.map(Math.abs));
  let worst = 0;
  actual.forEach((v, i) => worst = Math.max(worst, Math.abs(v - expected[i]!)));
  assert.ok(worst <= tolerance * scale, `${what}: off by ${worst} (scale ${scale})`);
}
