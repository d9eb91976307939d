/**
 * Benchmark: exports of models larger than one Neural Engine program is reported to hold, shaped
 * like Llama 3.2 3B (fp16 and c4w weights) and Llama 3.1 8B (c4w), with random bf16 weights
 * written by `scripts/bench/make_llama_shape.py` (6.4 and 16 GB, made on first use and deleted at
 * the end, as they take a minute to remake and much disk to keep). Each is exported twice in a
 * fresh process holding only the permissions the export needs: with the layer chunks the export
 * chooses, and with `--num_chunks 1`. Each bundle is then linted. The figures: chunk count, each
 * chunk's layers and weight GB, lint's errors and warnings (with the limits broken), export wall
 * time and peak RSS (target for the 8B shape: <= 5 minutes and <= 2 GB on the project's 2 cores),
 * and the load average, since the machine is shared.
 *
 * Run as a script, this module is the export probe:
 * `deno run --allow-read=CKPT,PARAMS,DIR --allow-write=DIR bench/export_chunks.ts CKPT PARAMS
 * DIR/OUT OPTIONS_JSON` prints the export's figures as JSON.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { loadAverage1m } from "./load_average.ts";
import { round } from "./spread.ts";
import { hasGnuTime, runTimedProbe } from "./timed_child.ts";
import { lintBundle } from "../bundle/lint.ts";
import { WORKER_DIRECTORY } from "../export/quantize_pool.ts";
import { readManifest } from "../bundle/manifest.ts";
import { exportModel } from "../export/export_model.ts";
import type { ExportOptions } from "../export/options.ts";
import type { LinearQuantization } from "../bundle/manifest.ts";

const ROOT = new URL("../", import.meta.url);
const GENERATOR = new URL("scripts/bench/make_llama_shape.py", ROOT).pathname;

/** Export options the probe passes on: what differs between the cases. */
type CaseOptions = Pick<ExportOptions, "linearQuantize" | "numChunks" | "ropeScaleFactor">;

/** One shape, made by the generator into an ignored folder. */
interface Shape {
  readonly key: "3b" | "8b";
  readonly dir: string;
  readonly ropeScaleFactor: number;
}

const shape = (key: Shape["key"], folder: string, ropeScaleFactor: number): Shape => ({
  key,
  dir: new URL(`out/bench/${folder}/`, ROOT).pathname,
  ropeScaleFactor,
});
// Llama 3.2's RoPE scaling is 32, Llama 3.1's 8; Meta's params.json does not say it.
const SHAPE_3B = shape("3b", "llama32-3b-shape", 32);
const SHAPE_8B = shape("8b", "llama31-8b-shape", 8);

const CASES: readonly {
  readonly name: string;
  readonly shape: Shape;
  readonly linearQuantize: LinearQuantization;
}[] = [
  { name: "3b_fp16", shape: SHAPE_3B, linearQuantize: "none" },
  { name: "3b_c4w", shape: SHAPE_3B, linearQuantize: "c4w" },
  { name: "8b_c4w", shape: SHAPE_8B, linearQuantize: "c4w" },
];

async function ensureShape(shape: Shape): Promise<void> {
  const python = Deno.env.get("LLAMANE_TORCH_PYTHON") ?? "/usr/bin/python3";
  const { success } = await new Deno.Command(python, {
    args: [GENERATOR, shape.key, shape.dir],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`Cannot generate the ${shape.key} checkpoint: ${GENERATOR} failed`);
}

/** The probe: one export, timed. */
async function exportProbe(
  checkpoint: string,
  params: string,
  output: string,
  options: CaseOptions,
): Promise<Figures> {
  const started = performance.now();
  const summary = await exportModel({ checkpoint, params, output, ...options });
  return { export_ms: round(performance.now() - started), weight_bytes: summary.weightBytes };
}

/** A bundle's chunks and lint findings, as figures. */
async function bundleFigures(bundle: string): Promise<Figures> {
  const manifest = await readManifest(bundle);
  const report = await lintBundle(bundle);
  const chunks = report.programs.filter((p) => p.piece.startsWith("blocks"));
  const errors = report.findings.filter((f) => f.severity === "error");
  const warnings = report.findings.filter((f) => f.severity === "warning");
  const listed = (findings: typeof errors) =>
    findings.map((f) => `${f.piece}: ${f.message}`).join("; ") || "none";
  return {
    pieces: manifest.pieces.map((p) => p.name).join(","),
    chunks: chunks.length,
    chunk_layers: chunks.map((c) => c.layers).join(","),
    chunk_weight_gb: chunks.map((c) => (c.weightBytes / 1e9).toFixed(2)).join(","),
    lint_errors: errors.length,
    lint_warnings: warnings.length,
    lint_error_findings: listed(errors),
    lint_warning_findings: listed(warnings),
  };
}

/** Exports one case in a fresh process, then lints the bundle, and removes it. */
async function exportCase(shape: Shape, options: CaseOptions, gnuTime: boolean): Promise<Figures> {
  const checkpoint = `${shape.dir}model.safetensors`;
  const params = `${shape.dir}params.json`;
  const scratch = await Deno.makeTempDir({ prefix: "llamane-bench-chunks-" });
  try {
    const bundle = `${scratch}/bench.llamane`;
    const load = await loadAverage1m();
    const figures = await runTimedProbe(
      "export_chunks",
      [
        `--allow-read=${checkpoint},${params},${scratch},${WORKER_DIRECTORY.pathname}`,
        `--allow-write=${scratch}`,
      ],
      new URL(import.meta.url),
      [checkpoint, params, bundle, JSON.stringify(options)],
      gnuTime,
    );
    return { ...figures, ...await bundleFigures(bundle), load_average_1m: load ?? "n/a" };
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

/** The 3B and 8B shapes, each exported in chunks and in one program, and linted. */
export const exportChunksBench: Bench = {
  name: "export_chunks",
  description: "llamane export of random Llama-3.2-3B-shaped (fp16 and c4w) and Llama-3.1-8B-" +
    "shaped (c4w) bf16 safetensors, each with the layer chunks the export chooses and with " +
    "--num_chunks 1, in a fresh process with only the permissions it needs (one run each), then " +
    "llamane lint of each bundle; targets for the 8B shape <= 5 min, <= 2 GB peak RSS",
  async run() {
    const gnuTime = await hasGnuTime();
    const figures: Figures = {};
    for (const shape of [SHAPE_3B, SHAPE_8B]) {
      await ensureShape(shape);
      figures[`${shape.key}_checkpoint_bytes`] =
        (await Deno.stat(`${shape.dir}model.safetensors`)).size;
      for (const { name, linearQuantize } of CASES.filter((c) => c.shape === shape)) {
        const options = { linearQuantize, ropeScaleFactor: shape.ropeScaleFactor };
        const runs: [string, CaseOptions][] = [
          [`${name}_`, options],
          [`${name}_one_chunk_`, { ...options, numChunks: 1 }],
        ];
        for (const [prefix, caseOptions] of runs) {
          const run = await exportCase(shape, caseOptions, gnuTime);
          for (const [key, value] of Object.entries(run)) figures[`${prefix}${key}`] = value;
        }
      }
      await Deno.remove(shape.dir, { recursive: true });
    }
    return figures;
  },
};

if (import.meta.main) {
  const [checkpoint, params, output, options] = Deno.args;
  if (options === undefined) {
    console.error(
      "usage: deno run --allow-read=CKPT,PARAMS,DIR --allow-write=DIR bench/export_chunks.ts " +
        "CKPT PARAMS DIR/OUTPUT OPTIONS_JSON",
    );
    Deno.exit(2);
  }
  console.log(
    JSON.stringify(await exportProbe(checkpoint!, params!, output!, JSON.parse(options))),
  );
}
