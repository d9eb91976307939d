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
import { DTYPE_BYTES } from "../checkpoint/dtype.ts";
import { openCheckpoint } from "../checkpoint/mod.ts";

const ROOT = new URL("../", import.meta.url);
const CACHE = new URL("out/bench/llama32-1b-shape/", ROOT);
const CHECKPOINT = new URL("consolidated.00.pth", CACHE).pathname;
const GENERATOR = new URL("scripts/bench/make_llama32_1b_shape.py", ROOT).pathname;
const TENSOR = "layers.0.feed_forward.w1.weight";
const RUNS = 5;
const GNU_TIME = "/usr/bin/time";

/** Runs the generator unless its outputs exist (it checks too; this avoids starting Python). */
async function ensureCheckpoint(): Promise<void> {
  try {
    await Deno.stat(CHECKPOINT);
    await Deno.stat(new URL("params.json", CACHE));
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const python = Deno.env.get("LLAMANE_TORCH_PYTHON") ?? "/usr/bin/python3";
  console.log(`generating ${CHECKPOINT} with ${python} (about 2.5 GB, once)`);
  const { success } = await new Deno.Command(python, {
    args: [GENERATOR, CACHE.pathname],
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  if (!success) {
    throw new Error(`Cannot generate the benchmark checkpoint: ${python} ${GENERATOR} failed`);
  }
}

/** The probe: what the child process measures. */
async function probe(path: string, tensor: string): Promise<Figures> {
  const start = performance.now();
  using source = await openCheckpoint(path);
  const opened = performance.now();
  const tensors = source.list();
  const listed = performance.now();
  const values = await source.readFloat32(tensor);
  const read = performance.now();
  const storedBytes = values.length * DTYPE_BYTES[source.info(tensor)!.dtype];
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

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Runs the probe in a new process under GNU time, whose `%M` is the child's peak RSS (the VmHWM
 * it had on exit): Deno refuses to read `/proc/self/status` without `--allow-all`, which a probe
 * should not need. Returns the probe's figures plus the process's wall time and peak RSS.
 */
async function runProbe(gnuTime: boolean): Promise<Figures> {
  const probe = [
    Deno.execPath(),
    "run",
    `--allow-read=${CHECKPOINT}`,
    new URL(import.meta.url).pathname,
    CHECKPOINT,
    TENSOR,
  ];
  const [command, ...args] = gnuTime ? [GNU_TIME, "-f", "maxrss_kb=%M", ...probe] : probe;
  const started = performance.now();
  const output = await new Deno.Command(command!, { args, stdout: "piped", stderr: "piped" })
    .output();
  const wall = performance.now() - started;
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(`Cannot run the checkpoint_load probe: exit code ${output.code}\n${stderr}`);
  }
  const kb = stderr.match(/maxrss_kb=(\d+)/)?.[1];
  return {
    ...JSON.parse(new TextDecoder().decode(output.stdout)),
    process_wall_ms: round(wall),
    peak_rss_mb: kb === undefined
      ? "n/a: needs GNU time at /usr/bin/time"
      : round(Number(kb) / 1024),
  };
}

/** Opening the 1B-shaped checkpoint, listing it and reading one 8192 x 2048 bf16 tensor. */
export const checkpointLoad: Bench = {
  name: "checkpoint_load",
  description: "open a Llama-3.2-1B-shaped .pth (2.5 GB bf16), list its tensors, " +
    `read ${TENSOR} as fp32, in a fresh process ` +
    `(median of ${RUNS}; page cache warm after the first); targets < 300 MB peak RSS, < 2 s`,
  async run() {
    await ensureCheckpoint();
    const gnuTime = await Deno.stat(GNU_TIME).then(() => true, () => false);
    const runs: Figures[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await runProbe(gnuTime));
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
