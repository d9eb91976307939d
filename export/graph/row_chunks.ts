/**
 * A weight's rows read a few at a time and quantized on the export's worker pool, with enough
 * chunks in flight to keep every worker busy, their results taken in row order.
 *
 * @module
 */

import type { ChunkJob, ChunkResult } from "../chunk_job.ts";
import type { ExportContext } from "./context.ts";
import type { WeightRef } from "./weight_reader.ts";

/** Chunks in flight per worker: one being done while the next waits, already read. */
const CHUNKS_PER_THREAD = 2;

/**
 * Reads rows `[start, end)` of `weight`, `step` rows at a time, has the pool do `job` on each
 * chunk (its rows and their count filled in), and gives each result to `take` with its first row,
 * in row order: what `take` adds up comes out the same on any number of threads.
 */
export async function processRowChunks<J extends ChunkJob>(
  ctx: ExportContext,
  weight: WeightRef,
  [start, end]: readonly [number, number],
  step: number,
  job: Omit<J, "weights" | "rows">,
  take: (result: ChunkResult<J>, row: number) => void,
): Promise<void> {
  const inFlight: { row: number; result: Promise<ChunkResult<J>> }[] = [];
  const window = CHUNKS_PER_THREAD * ctx.pool.threads;
  for (let row = start; row < end; row += step) {
    const stop = Math.min(end, row + step);
    const weights = await ctx.weights.rows(weight, row, stop);
    const result = ctx.pool.run({ ...job, weights, rows: stop - row } as J);
    // Its failure surfaces where it is awaited, in order; until then it is not unhandled.
    result.catch(() => {});
    inFlight.push({ row, result });
    if (inFlight.length >= window) {
      const oldest = inFlight.shift()!;
      take(await oldest.result, oldest.row);
    }
  }
  for (const { row, result } of inFlight) take(await result, row);
}
