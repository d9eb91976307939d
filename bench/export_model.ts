/**
 * Benchmark: `llamane export` of the Llama-3.2-1B-shaped bf16 checkpoint (2.5 GB, made by
 * `scripts/bench/make_llama32_1b_shape.py` on first use) with the default options (fp16, c4w,
 * `-E 8,0`, graph breaks), in a fresh Deno process holding only the permissions the export needs,
 * so that its wall time and peak RSS are the export's alone. Targets: <= 60 s and <= 2 GB peak
 * RSS on the project's 2-core machine. One more export with `--linear_quantize lut4`, whose
 * k-means costs more than a scale search (target <= 120 s), gives the `lut4_*` figures.
 *
 * A second probe replays the export's per-tensor work (read and convert, quantize, fp16, range
 * checks, int4 packing, SHA-256, write) with the same library functions and times each phase, so
 * that the figures say where the time goes; it is a replay, not the export itself, and its total
 * leaves out building and writing the programs.
 *
 * Run as a script, this module is those probes:
 * `deno run --allow-read=... --allow-write=DIR bench/export_model.ts export CKPT PARAMS DIR/OUT
 * [LINEAR]` (LINEAR a `--linear_quantize` value, the export's default for the checkpoint when left
 * out) or `... bench/export_model.ts phases CKPT PARAMS DIR/SCRATCH` prints its figures as JSON.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Bench, Figures } from "./bench.ts";
import { checkTensor, float16Bits, type Tensor, valuesToBytes } from "../coreml/tensor.ts";
import { exportModel } from "../export/export_model.ts";
import { WORKER_DIRECTORY } from "../export/quantize_pool.ts";
import { rowsPerRead } from "../export/graph/weight_tensor.ts";
import { WeightReader, type WeightRef } from "../export/graph/weight_reader.ts";
import { LINEAR_QUANTIZATIONS, type LinearQuantization } from "../bundle/manifest.ts";
import { linearShapes, resolveExportOptions } from "../export/options.ts";
import { type QuantBits, quantizeMatrix } from "../export/quantize.ts";
import { splitCount } from "../export/split_linear.ts";
import { openModel } from "../llama/open.ts";
import { EMBEDDING } from "../llama/weights.ts";
import { LLAMA32_1B_SHAPE } from "./bench_models.ts";
import { loadAverage1m } from "./load_average.ts";
import { median, round } from "./spread.ts";
import { hasGnuTime, runTimedProbe } from "./timed_child.ts";

const { checkpoint: CHECKPOINT, params: PARAMS, ropeScaleFactor: ROPE_SCALE_FACTOR } =
  LLAMA32_1B_SHAPE;
const RUNS = 3;

/**
 * The export probe: the default export (with `linearQuantize`, if given, for the layers' linear
 * weights), timed, with the time up to each piece's last weight (from the progress callback) so
 * that the pieces can be told apart.
 */
async function exportProbe(
  checkpoint: string,
  params: string | undefined,
  output: string,
  linearQuantize: LinearQuantization | undefined,
): Promise<Figures> {
  const started = performance.now();
  let embeddingDone = 0;
  let blocksDone = 0;
  let headDone = 0;
  const summary = await exportModel({
    checkpoint,
    // Hugging Face and GGUF checkpoints carry their own config, RoPE scaling included.
    ...(params === undefined ? {} : { params, ropeScaleFactor: ROPE_SCALE_FACTOR }),
    output,
    ...(linearQuantize === undefined ? {} : { linearQuantize }),
    onProgress: ({ tensor, tensorsDone, tensorsTotal }) => {
      const now = performance.now();
      if (tensorsDone === 1) embeddingDone = now;
      else if (tensorsDone === tensorsTotal) headDone = now;
      else if (tensor.startsWith("layers.")) blocksDone = now;
    },
  });
  const finished = performance.now();
  return {
    export_ms: round(finished - started),
    weight_bytes: summary.weightBytes,
    quantize_threads: summary.threads,
    // Each span ends at a piece's last weight; the program of the piece before it is written at
    // its start, and the head's (with the manifest) in finish_ms.
    embedding_piece_ms: round(embeddingDone - started),
    blocks_piece_ms: round(blocksDone - embeddingDone),
    head_piece_ms: round(headDone - blocksDone),
    finish_ms: round(finished - headDone),
  };
}

/** Accumulated milliseconds per phase of the replay. */
class PhaseClock {
  readonly ms: Record<string, number> = {};

  time<T>(phase: string, work: () => T): T {
    const start = performance.now();
    const result = work();
    this.ms[phase] = (this.ms[phase] ?? 0) + performance.now() - start;
    return result;
  }

  async timeAsync<T>(phase: string, work: () => Promise<T>): Promise<T> {
    const start = performance.now();
    const result = await work();
    this.ms[phase] = (this.ms[phase] ?? 0) + performance.now() - start;
    return result;
  }
}

/**
 * The phase probe: the export's per-tensor work for the default options, phase by phase: every
 * weight read (wq and wk with their RoPE row order) and converted to fp32, quantized on one thread
 * (int8 per row for the embedding and the head, int4 per row for the layers' linear parts; the
 * export spreads this over worker threads), scales and norms converted to fp16, every
 * blob range-checked twice (the program builder and weight.bin each check), packed, hashed with
 * SHA-256 and written to a scratch file.
 */
async function phasesProbe(checkpoint: string, params: string, scratch: string): Promise<Figures> {
  const started = performance.now();
  const options = resolveExportOptions({ checkpoint, params, ropeScaleFactor: ROPE_SCALE_FACTOR });
  using model = await openModel({ checkpoint, params }, { ropeScaleFactor: ROPE_SCALE_FACTOR });
  const { config } = model;
  const weights = new WeightReader(model.source);
  const clock = new PhaseClock();
  using file = Deno.openSync(scratch, { write: true, create: true, truncate: true });
  let bytesWritten = 0;

  const store = (tensor: Tensor) => {
    clock.time("check", () => {
      checkTensor(tensor, "builder");
      checkTensor(tensor, "weight.bin");
    });
    const { dtype, values } = tensor;
    if (dtype === "string") throw new Error("Cannot store a string tensor as a blob");
    const bytes = clock.time("pack", () => valuesToBytes(dtype, values));
    clock.time("hash", () => createHash("sha256").update(bytes).digest("hex"));
    clock.time("write", () => {
      for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
    });
    bytesWritten += bytes.length;
  };
  const fp16 = (shape: number[], values: Float32Array) =>
    store({ dtype: "fp16", shape, values: clock.time("fp16", () => float16Bits(values)) });

  // Rows [start, end) of a weight read and quantized per row a few rows at a time, as
  // export/graph/linear.ts's readQuantized does, then stored as one blob with fp16 scales.
  const quantized = async (weight: WeightRef, start: number, end: number, bits: QuantBits) => {
    const [, columns] = weights.matrixShape(weight.name);
    const values = new Int8Array((end - start) * columns);
    const scales = new Float32Array(end - start);
    const step = rowsPerRead(columns, weight.ropeHeadDim);
    for (let row = start; row < end; row += step) {
      const stop = Math.min(end, row + step);
      const chunk = await clock.timeAsync("read_convert", () => weights.rows(weight, row, stop));
      clock.time("quantize", () => {
        const q = quantizeMatrix(chunk, stop - row, columns, bits, columns, Math.f16round);
        values.set(q.values, (row - start) * columns);
        scales.set(q.scales, row - start);
      });
    }
    store({ dtype: bits === 4 ? "int4" : "int8", shape: [end - start, columns], values });
    fp16([end - start, 1], scales);
  };

  // The embedding table (int8 per row), the norms, then every linear part (int4 per row, the
  // head int8 as -E says).
  const [vocab] = weights.matrixShape(EMBEDDING);
  await quantized({ name: EMBEDDING }, 0, vocab, 8);
  for (const info of model.source.list()) {
    if (info.shape.length !== 1) continue;
    fp16([...info.shape], await clock.timeAsync("read_convert", () => weights.all(info.name)));
  }
  for (const [label, out] of linearShapes(config)) {
    const name = label.startsWith(EMBEDDING) ? EMBEDDING : label;
    const ropeHeadDim = /attention\.w[qk]\.weight$/.test(name) ? config.headDim : undefined;
    const parts = splitCount(name, out, options.targetSplitSize, options.maxSplits);
    const rows = out / parts;
    for (let part = 0; part < parts; part++) {
      const weight = ropeHeadDim === undefined ? { name } : { name, ropeHeadDim };
      await quantized(weight, part * rows, (part + 1) * rows, name === EMBEDDING ? 8 : 4);
    }
  }
  const total = performance.now() - started;
  const figures: Figures = {};
  for (const [phase, ms] of Object.entries(clock.ms)) figures[`${phase}_ms`] = round(ms);
  return {
    ...figures,
    replay_total_ms: round(total),
    replay_bytes_written: bytesWritten,
  };
}

/**
 * Runs one probe on `checkpoint` (with `params` for a Meta one) in a new process that may read
 * only them and a scratch directory: the probe's figures, its wall time and its peak RSS.
 */
export async function runProbe(
  mode: "export" | "phases",
  checkpoint: string,
  params: string | undefined,
  gnuTime: boolean,
  linearQuantize?: LinearQuantization,
): Promise<Figures> {
  const scratch = await Deno.makeTempDir({ prefix: "llamane-bench-export-" });
  try {
    const target = `${scratch}/${mode === "export" ? "bench.llamane" : "scratch.bin"}`;
    const load = await loadAverage1m();
    // The export's quantization workers load their modules from export/.
    const reads = [
      checkpoint,
      ...(params === undefined ? [] : [params]),
      scratch,
      WORKER_DIRECTORY.pathname,
    ];
    const figures = await runTimedProbe(
      `export_model ${mode}`,
      [`--allow-read=${reads.join(",")}`, `--allow-write=${scratch}`],
      new URL(import.meta.url),
      [
        mode,
        checkpoint,
        params ?? NO_PARAMS,
        target,
        ...(linearQuantize === undefined ? [] : [linearQuantize]),
      ],
      gnuTime,
    );
    return { ...figures, load_average_1m: load ?? "n/a" };
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

/** Medians of the numeric figures of several runs, keyed as given (notes from the first run). */
export function medians(runs: Figures[], prefix = ""): Figures {
  const figures: Figures = {};
  for (const [key, value] of Object.entries(runs[0]!)) {
    figures[prefix + key] = typeof value === "number"
      ? median(runs.map((run) => Number(run[key])))
      : value;
  }
  return figures;
}

/** The default export of the 1B-shaped checkpoint, and the replay of its phases. */
export const exportModelBench: Bench = {
  name: "export_model",
  description: "llamane export of a Llama-3.2-1B-shaped .pth (2.5 GB bf16) with the default " +
    "options (fp16, c4w, -E 8,0, graph breaks) in a fresh process with only the permissions it " +
    `needs (median of ${RUNS}; page cache warm after the first), plus a replay timing its ` +
    "per-tensor phases (phase_*, median of the same count); targets <= 60 s, <= 2 GB peak " +
    "RSS; and one export with --linear_quantize lut4 (lut4_*, target <= 120 s)",
  async run() {
    await LLAMA32_1B_SHAPE.ensure();
    const gnuTime = await hasGnuTime();
    const exports: Figures[] = [];
    for (let i = 0; i < RUNS; i++) {
      exports.push(await runProbe("export", CHECKPOINT, PARAMS, gnuTime));
    }
    const phases: Figures[] = [];
    for (let i = 0; i < RUNS; i++) {
      phases.push(await runProbe("phases", CHECKPOINT, PARAMS, gnuTime));
    }
    const lut4 = await runProbe("export", CHECKPOINT, PARAMS, gnuTime, "lut4");
    const loads = [...exports, ...phases, lut4].map((run) => run.load_average_1m)
      .filter((load) => typeof load === "number");
    const { load_average_1m: _load, ...exportFigures } = medians(exports);
    const {
      load_average_1m: _phaseLoad,
      process_wall_ms: phaseWall,
      peak_rss_mb: phaseRss,
      ...phaseFigures
    } = medians(phases);
    const renamed: Figures = {};
    for (const [key, value] of Object.entries(phaseFigures)) renamed[`phase_${key}`] = value;
    return {
      checkpoint_bytes: (await Deno.stat(CHECKPOINT)).size,
      ...exportFigures,
      peak_rss_mb_max: typeof exports[0]!.peak_rss_mb === "number"
        ? Math.max(...exports.map((run) => Number(run.peak_rss_mb)))
        : exports[0]!.peak_rss_mb!,
      first_run_process_wall_ms: exports[0]!.process_wall_ms!,
      ...renamed,
      phase_process_wall_ms: phaseWall!,
      phase_peak_rss_mb: phaseRss!,
      lut4_export_ms: lut4.export_ms!,
      lut4_process_wall_ms: lut4.process_wall_ms!,
      lut4_process_cpu_ms: lut4.process_cpu_ms!,
      lut4_peak_rss_mb: lut4.peak_rss_mb!,
      load_average_1m_min: loads.length > 0 ? Math.min(...loads as number[]) : "n/a",
      load_average_1m_max: loads.length > 0 ? Math.max(...loads as number[]) : "n/a",
    };
  },
};

/** What the probe's command line says for "no params.json". */
const NO_PARAMS = "-";

if (import.meta.main) {
  const [mode, checkpoint, paramsArg, target, linear] = Deno.args;
  const params = paramsArg === NO_PARAMS ? undefined : paramsArg;
  const linearQuantize = LINEAR_QUANTIZATIONS.find((name) => name === linear);
  if (
    (mode !== "export" && mode !== "phases") || checkpoint === undefined ||
    paramsArg === undefined || target === undefined ||
    (mode === "phases" && params === undefined) ||
    (linear !== undefined && linearQuantize === undefined)
  ) {
    console.error(
      "usage: deno run --allow-read=CKPT,PARAMS,DIR --allow-write=DIR bench/export_model.ts " +
        "export|phases CKPT PARAMS|- DIR/OUTPUT [LINEAR]",
    );
    Deno.exit(2);
  }
  console.log(
    JSON.stringify(
      mode === "export"
        ? await exportProbe(checkpoint, params, target, linearQuantize)
        : await phasesProbe(checkpoint, params!, target),
    ),
  );
}
