/**
 * coremltools as the format oracle for exported bundles, on the KJV model, every PyTorch oracle
 * fixture and a random safetensors model, in every export variant (layer chunks and logits in
 * parts included): each package loads, its
 * programs rebuild with type inference, the inferred I/O equals the manifest's, every blob reads
 * back, and every weight dequantizes to what an independent NumPy quantization of the checkpoint
 * tensor gives (scripts/coreml/check_weights.py), which also measures from them the relative
 * reconstruction error the export summary reports.
 */

import assert from "node:assert/strict";
import { exportModel, type ExportSummary } from "./export_model.ts";
import { type ExportOptions, ExportOptionsError } from "./options.ts";
import { UnevenSplitError } from "./split_linear.ts";
import { type BundleManifest, readManifest } from "../bundle/manifest.ts";
import { runOracleScript } from "../testing/oracle_python.ts";
import { oracleFixtures } from "../testing/oracle_fixtures.ts";
import { writeTinyLlama } from "../testing/tiny_llama.ts";

const VARIANTS: Record<string, Partial<ExportOptions>> = {
  "fp16 c4w (defaults)": {},
  "fp32 unquantized": { dtype: "fp32", linearQuantize: "none", embeddingQuantize: "none" },
  "b4w": { linearQuantize: "b4w" },
  "b4w asymmetric, -E 4,32": {
    linearQuantize: "b4w",
    asymmetric: true,
    embeddingQuantize: { bits: 4, groupSize: 32 },
  },
  "c8w": { linearQuantize: "c8w" },
  "b8w, -E 8,32": { linearQuantize: "b8w", embeddingQuantize: { bits: 8, groupSize: 32 } },
  "-E 4,32": { embeddingQuantize: { bits: 4, groupSize: 32 } },
  "no graph breaks": { graphBreaks: false },
  "target split 16": { targetSplitSize: 16 },
  "multifunction": { multifunction: true },
  "two layer chunks": { numChunks: 2 },
  "logits in parts": { targetSplitSize: 32, maxSplits: 32, maxLogitsAxis: 32 },
  "lut4, 4 rows per palette": { linearQuantize: "lut4", lutGroupSize: 4 },
  "lut4 (one palette per row)": { linearQuantize: "lut4" },
  // The fixtures' rows of 32 values are too few for one 64-entry palette each.
  "lut6, 16 rows per palette, -E lut4": {
    linearQuantize: "lut6",
    lutGroupSize: 16,
    embeddingQuantize: { paletteBits: 4 },
  },
  "lut4 multifunction in two chunks, -E lut6": {
    linearQuantize: "lut4",
    lutGroupSize: 16,
    embeddingQuantize: { paletteBits: 6 },
    multifunction: true,
    numChunks: 2,
  },
};

interface Model {
  readonly name: string;
  readonly checkpoint: string;
  readonly params: string;
  readonly ropeScaleFactor?: number;
}

const tiny = await writeTinyLlama();
const models: Model[] = [
  {
    name: "kjv",
    checkpoint: "models/kjv-tiny/consolidated.00.pth",
    params: "models/kjv-tiny/params.json",
  },
  { name: "tiny safetensors", checkpoint: tiny.checkpoint, params: tiny.params },
  ...(await oracleFixtures()).filter((f) => f.name !== "kjv").map((f) => ({
    name: f.name,
    checkpoint: f.checkpoint,
    params: f.params,
    ...(f.ropeScaleFactor === undefined ? {} : { ropeScaleFactor: f.ropeScaleFactor }),
  })),
];

interface Exported {
  readonly model: Model;
  readonly variant: string;
  readonly bundle: string;
  readonly manifest: BundleManifest;
  readonly summary: ExportSummary;
}

/** Every model in every variant it can take; shapes a variant cannot split or group are skipped. */
const exported: Exported[] = [];
const refused: string[] = [];
for (const model of models) {
  for (const [variant, options] of Object.entries(VARIANTS)) {
    const bundle = `${await Deno.makeTempDir()}/m.llamane`;
    let summary: ExportSummary;
    try {
      summary = await exportModel({
        checkpoint: model.checkpoint,
        params: model.params,
        output: bundle,
        inputLen: 8,
        maxContextLen: 64,
        ...(model.ropeScaleFactor === undefined ? {} : { ropeScaleFactor: model.ropeScaleFactor }),
        ...options,
      });
    } catch (error) {
      // b4w, -E 4,32 and a small split size need dimensions they divide; not every fixture has them.
      if (!(error instanceof ExportOptionsError || error instanceof UnevenSplitError)) throw error;
      refused.push(`${model.name}: ${variant}`);
      continue;
    }
    exported.push({ model, variant, bundle, manifest: await readManifest(bundle), summary });
  }
}

Deno.test("every variant exports the KJV model and the safetensors model", () => {
  for (const name of ["kjv", "tiny safetensors"]) {
    assert.deepEqual(refused.filter((r) => r.startsWith(`${name}:`)), []);
  }
  // Each variant also covers several PyTorch fixtures.
  for (const variant of Object.keys(VARIANTS)) {
    assert.ok(exported.filter((e) => e.variant === variant).length >= 4, variant);
  }
});

interface Report {
  packages: {
    path: string;
    specificationVersion: number;
    defaultFunctionName: string;
    functions: Record<string, { inputs: unknown[]; outputs: unknown[] }>;
  }[];
}

Deno.test("coremltools loads every exported package and infers the manifest's inputs and outputs", async () => {
  const packages = exported.flatMap(({ bundle, manifest }) =>
    manifest.pieces.map((p) => `${bundle}/${p.package}`)
  );
  const report: Report = JSON.parse(await runOracleScript("scripts/coreml/validate.py", packages));
  assert.equal(report.packages.length, packages.length);
  for (const { bundle, manifest, model, variant } of exported) {
    for (const piece of manifest.pieces) {
      const checked = report.packages.find((p) => p.path === `${bundle}/${piece.package}`);
      assert.ok(checked, `${model.name}, ${variant}: ${piece.package}`);
      assert.equal(checked.specificationVersion, 9);
      assert.deepEqual(
        Object.keys(checked.functions).sort(),
        piece.functions.map((f) => f.name).sort(),
      );
      assert.equal(checked.defaultFunctionName, manifest.export.multifunction ? "decode" : "");
      for (const spec of piece.functions) {
        const inferred: { inputs: unknown[]; outputs: unknown[] } = checked.functions[spec.name]!;
        assert.deepEqual(
          inferred.inputs,
          spec.inputs,
          `${model.name}, ${variant}: ${piece.package} ${spec.name} inputs`,
        );
        assert.deepEqual(
          inferred.outputs,
          spec.outputs,
          `${model.name}, ${variant}: ${piece.package} ${spec.name} outputs`,
        );
      }
    }
  }
});

interface WeightsReport {
  weights_checked: number;
  relative_error: {
    linear_mean: number;
    linear_worst: number;
    linear_worst_tensor: string;
    embedding: number;
  };
}

/** Whether two sums of float64 squares agree but for their summation order. */
function sameSum(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b));
}

Deno.test("every exported weight dequantizes to an independent NumPy quantization of its tensor", async () => {
  const pairs = exported.map(({ bundle, model }) => `${bundle}=${model.checkpoint}`);
  const report: Record<string, WeightsReport> = JSON.parse(
    await runOracleScript("scripts/coreml/check_weights.py", pairs),
  );
  for (const { bundle, manifest, model, variant, summary } of exported) {
    // Every linear part of every layer, the head's parts and the embedding table, per function.
    const functions = manifest.export.multifunction ? 2 : 1;
    const checked = report[bundle]!.weights_checked;
    assert.ok(
      checked >= (7 * manifest.model.nLayers + 2) * functions,
      `${model.name}, ${variant}: ${checked} weights`,
    );
    const measured = report[bundle]!.relative_error;
    const reported = summary.reconstructionError;
    const what = `${model.name}, ${variant}: ${JSON.stringify(measured)}`;
    assert.ok(sameSum(reported.linearMean, measured.linear_mean), what);
    assert.ok(sameSum(reported.linearWorst.relativeError, measured.linear_worst), what);
    assert.equal(reported.linearWorst.tensor, measured.linear_worst_tensor, what);
    assert.ok(sameSum(reported.embedding, measured.embedding), what);
  }
});
