/**
 * Helpers shared by the checkpoint tests: fixture paths, the PyTorch reference values the fixture
 * generator (`scripts/fixtures/checkpoint/make.py`) stored, and temporary files for corrupted
 * copies of fixtures.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CheckpointFormatError, TensorReadError } from "./errors.ts";
import type { TensorSource } from "./tensor_source.ts";

const FIXTURES = new URL("../testdata/checkpoint/", import.meta.url);

/** Absolute path of a file under `testdata/checkpoint/`. */
export function fixture(name: string): string {
  return new URL(name, FIXTURES).pathname;
}

/** A tensor as PyTorch saw it: name, dtype, shape and `tensor.float()` values, row-major. */
export interface ExpectedTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

interface ExpectedJson {
  tensors: {
    name: string;
    dtype: string;
    shape: number[];
    values?: (number | string)[];
    values_file?: string;
  }[];
}

/** Reads `<name>.expected.json` and the raw float32 files it points to. */
export async function readExpected(name: string): Promise<ExpectedTensor[]> {
  const json: ExpectedJson = JSON.parse(await Deno.readTextFile(fixture(`${name}.expected.json`)));
  return await Promise.all(json.tensors.map(async (tensor) => {
    let values: Float32Array;
    if (tensor.values_file !== undefined) {
      const bytes = await Deno.readFile(fixture(tensor.values_file));
      values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    } else {
      // Non-finite values are stored as the strings "Infinity", "-Infinity" and "NaN".
      values = Float32Array.from(tensor.values ?? [], Number);
    }
    return { name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, values };
  }));
}

/** Asserts fp32 arrays are identical, element by element (so -0 differs from 0). */
export function assertSameFloats(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, PyTorch says ${expected[i]}`);
    }
  }
}

/** Asserts `source` lists the expected tensors in order and reads each as PyTorch does. */
export async function assertMatchesPyTorch(
  source: TensorSource,
  expectedName: string,
): Promise<void> {
  const expected = await readExpected(expectedName);
  assert.deepEqual(
    source.list().map(({ name, dtype, shape }) => ({ name, dtype, shape })),
    expected.map(({ name, dtype, shape }) => ({ name, dtype, shape })),
  );
  for (const tensor of expected) {
    assertSameFloats(await source.readFloat32(tensor.name), tensor.values, tensor.name);
  }
}

/** Writes `bytes` to a temporary file, runs `fn` on its path and removes it. */
export async function withTempFile<T>(
  bytes: Uint8Array,
  fn: (path: string) => Promise<T>,
): Promise<T> {
  const path = await Deno.makeTempFile({ prefix: "llamane-checkpoint-" });
  try {
    await Deno.writeFile(path, bytes);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

/** Whether `error` is one of the checkpoint module's own error classes. */
export function isCheckpointError(error: unknown): boolean {
  return error instanceof CheckpointFormatError || error instanceof TensorReadError;
}
