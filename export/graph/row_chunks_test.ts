import assert from "node:assert/strict";
import { type QuantizeJob, runChunkJob } from "../chunk_job.ts";
import { QuantizePool } from "../quantize_pool.ts";
import type { ExportContext } from "./context.ts";
import { processRowChunks } from "./row_chunks.ts";
import type { WeightRef } from "./weight_reader.ts";

const [ROWS, COLUMNS] = [24, 96];

function values(): Float32Array {
  return Float32Array.from({ length: ROWS * COLUMNS }, (_, i) => Math.sin(i * 0.7) * (1 + i % 5));
}

/** An export context whose weight is `matrix`, read through `pool`. */
function context(matrix: Float32Array, pool: QuantizePool): ExportContext {
  const weights = {
    rows: (_: WeightRef, start: number, end: number) =>
      Promise.resolve(matrix.slice(start * COLUMNS, end * COLUMNS)),
  };
  return { pool, weights } as unknown as ExportContext;
}

const SCHEME = {
  kind: "quantize",
  columns: COLUMNS,
  bits: 4,
  groupSize: 32,
  dtype: "fp16",
  asymmetric: true,
} as const;

function job(weights: Float32Array, rows: number): QuantizeJob {
  return {
    ...SCHEME,
    weights,
    rows,
  };
}

Deno.test("processRowChunks() takes the workers' results in row order, as this thread makes them", async () => {
  const matrix = values();
  using pool = await QuantizePool.start(3);
  const taken: { row: number; values: Int8Array; weights: Float32Array }[] = [];
  await processRowChunks<QuantizeJob>(
    context(matrix, pool),
    { name: "w" },
    [2, 23],
    2,
    SCHEME,
    (result, row) => {
      taken.push({ row, values: result.matrix.values, weights: result.weights });
    },
  );
  assert.deepEqual(taken.map((t) => t.row), [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22]);
  for (const { row, values, weights } of taken) {
    const rows = Math.min(23, row + 2) - row;
    const rowsRead = matrix.slice(row * COLUMNS, (row + rows) * COLUMNS);
    assert.deepEqual(weights, rowsRead, `the rows from ${row} come back`);
    assert.deepEqual(values, runChunkJob(job(rowsRead, rows)).matrix.values, `rows from ${row}`);
  }
});

Deno.test("processRowChunks() gives a worker's error as this thread would throw it", async () => {
  const matrix = values();
  matrix[9 * COLUMNS + 5] = NaN;
  using pool = await QuantizePool.start(2);
  await assert.rejects(
    processRowChunks<QuantizeJob>(
      context(matrix, pool),
      { name: "w" },
      [0, ROWS],
      3,
      SCHEME,
      () => {},
    ),
    (error: Error) => error instanceof RangeError && /NaN or infinite/.test(error.message),
  );
});

Deno.test("a pool of one thread quantizes on this thread", async () => {
  using pool = await QuantizePool.start(1);
  assert.equal(pool.threads, 1);
  const weights = values();
  const { matrix } = await pool.run(job(weights, ROWS));
  assert.deepEqual(matrix, runChunkJob(job(values(), ROWS)).matrix);
});
