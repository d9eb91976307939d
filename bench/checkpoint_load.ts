/**
 * Benchmark: the cost of opening a Llama-3.2-1B-shaped `.pth` (2.5 GB of bf16, made by
 * `scripts/bench/make_llama32_1b_shape.py` on first use), listing its tensors and reading one large
 * tensor as fp32, measured in a fresh Deno process so that its peak RSS is this work's alone.
 * Targets: under 300 MB peak RSS and under 2 s.
 *
 * Run as a script, this module is that probe: `deno run --allow-read=<checkpoint>
 * bench/checkpoint_load.ts <checkpoint> <tensor>` prints its timings as JSON.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { storedBytes as storedByteCount } from "../checkpoint/dtype.ts";
import { openCheckpoint } from "../checkpoint/mod.ts";
import { LLAMA32_1B_SHAPE } from "./bench_models.ts";
import { median, round } from "./spread.ts";
import { hasGnuTime, runTimedProbe } from "./timed_child.ts";

const CHECKPOINT = LLAMA32_1B_SHAPE.checkpoint;
const TENSOR = "layers.0.feed_forward.w1.weight";
const RUNS = 5;

/** The probe: what the child process measures. */
async function probe(path: string, tensor: string): Promise<Figures> {
  const start = performance.now();
  using source = await openCheckpoint(path);
  const opened = performance.now();
  const tensors = source.list();
  const listed = performance.now();
  const values = await source.readFloat32(tensor);
  const read = performance.now();
  const storedBytes = storedByteCount(source.info(tensor)!.dtype, values.length);
  return {
    tensors: tensors.length,
    open_ms: round(opened - start),
    list_ms: round(listed - opened),
    read_ms: round(read - listed),
    read_fp32_mb: round(values.byteLength / 2 ** 20),
    stored_mb_per_s: round(storedBytes / 2 ** 20 / ((read - listed) / 1000)),
    in_process_ms: round(read - start),
  };
}

/** Opening the 1B-shaped checkpoint, listing it and reading one 8192 x 2048 bf16 tensor. */
export const checkpointLoad: Bench = {
  name: "checkpoint_load",
  description: "open a Llama-3.2-1B-shaped .pth (2.5 GB bf16), list its tensors, " +
    `read ${TENSOR} as fp32, in a fresh process ` +
    `(median of ${RUNS}; page cache warm after the first); targets < 300 MB peak RSS, < 2 s`,
  async run() {
    await LLAMA32_1B_SHAPE.ensure();
    const gnuTime = await hasGnuTime();
    const runs: Figures[] = [];
    for (let i = 0; i < RUNS; i++) {
      runs.push(
        await runTimedProbe(
          "checkpoint_load",
          [`--allow-read=${CHECKPOINT}`],
          new URL(import.meta.url),
          [CHECKPOINT, TENSOR],
          gnuTime,
        ),
      );
    }
    const numbers = (key: string) => runs.map((run) => Number(run[key]));
    const first = runs[0]!;
    return {
      checkpoint_bytes: (await Deno.stat(CHECKPOINT)).size,
      tensors: first.tensors!,
      tensor: TENSOR,
      read_fp32_mb: first.read_fp32_mb!,
      process_wall_ms: median(numbers("process_wall_ms")),
      in_process_ms: median(numbers("in_process_ms")),
      open_ms: median(numbers("open_ms")),
      list_ms: median(numbers("list_ms")),
      read_ms: median(numbers("read_ms")),
      stored_mb_per_s: median(numbers("stored_mb_per_s")),
      peak_rss_mb: typeof first.peak_rss_mb === "number"
        ? Math.max(...numbers("peak_rss_mb"))
        : first.peak_rss_mb!,
      first_run_process_wall_ms: first.process_wall_ms!,
    };
  },
};

if (import.meta.main) {
  const [path, tensor] = Deno.args;
  if (path === undefined || tensor === undefined) {
    console.error("usage: deno run --allow-read bench/checkpoint_load.ts <checkpoint> <tensor>");
    Deno.exit(2);
  }
  console.log(JSON.stringify(await probe(path, tensor)));
}
