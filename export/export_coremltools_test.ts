/**
 * coremltools as the format oracle for exported bundles: every package of every export variant
 * loads, its programs rebuild with type inference, the inferred I/O equals the manifest's, every
 * blob reads back, and quantized weights dequantize to what an independent NumPy quantization of
 * the same checkpoint tensor gives.
 */

import assert from "node:assert/strict";
import { exportModel } from "./export_model.ts";
import type { ExportOptions } from "./options.ts";
import { type BundleManifest, readManifest } from "../bundle/manifest.ts";
import { runOracleScript } from "../testing/oracle_python.ts";
import { TINY_PARAMS, writeTinyLlama } from "../testing/tiny_llama.ts";

const tiny = await writeTinyLlama();
const headDim = TINY_PARAMS.dim / TINY_PARAMS.n_heads;

interface Variant {
  readonly name: string;
  readonly options: Partial<ExportOptions>;
  /** Bits and group of linear weights (16/32: float) and of the embedding table. */
  readonly linear: { bits: number; group: number };
  readonly embedding: { bits: number; group: number };
}

const VARIANTS: readonly Variant[] = [
  {
    name: "fp16 c4w (defaults)",
    options: {},
    linear: { bits: 4, group: 0 },
    embedding: { bits: 8, group: 0 },
  },
  {
    name: "fp32 unquantized",
    options: { dtype: "fp32", linearQuantize: "none", embeddingQuantize: "none" },
    linear: { bits: 32, group: 0 },
    embedding: { bits: 32, group: 0 },
  },
  {
    name: "b4w",
    options: { linearQuantize: "b4w" },
    linear: { bits: 4, group: 32 },
    embedding: { bits: 8, group: 0 },
  },
  {
    name: "c8w",
    options: { linearQuantize: "c8w" },
    linear: { bits: 8, group: 0 },
    embedding: { bits: 8, group: 0 },
  },
  {
    name: "-E 4,32",
    options: { embeddingQuantize: { bits: 4, groupSize: 32 } },
    linear: { bits: 4, group: 0 },
    embedding: { bits: 4, group: 32 },
  },
  {
    name: "no graph breaks",
    options: { graphBreaks: false },
    linear: { bits: 4, group: 0 },
    embedding: { bits: 8, group: 0 },
  },
  {
    name: "target split 16",
    options: { targetSplitSize: 16 },
    linear: { bits: 4, group: 0 },
    embedding: { bits: 8, group: 0 },
  },
];

const exported = new Map<string, { bundle: string; manifest: BundleManifest }>();
for (const variant of VARIANTS) {
  const bundle = `${await Deno.makeTempDir()}/tiny.llamane`;
  await exportModel({
    checkpoint: tiny.checkpoint,
    params: tiny.params,
    output: bundle,
    inputLen: 8,
    maxContextLen: 40,
    ...variant.options,
  });
  exported.set(variant.name, { bundle, manifest: await readManifest(bundle) });
}

interface Report {
  packages: {
    path: string;
    specificationVersion: number;
    defaultFunctionName: string;
    functions: Record<string, { inputs: unknown[]; outputs: unknown[] }>;
  }[];
}

Deno.test("coremltools loads every exported package and infers the manifest's inputs and outputs", async () => {
  const packages = [...exported.values()].flatMap(({ bundle, manifest }) =>
    manifest.pieces.map((p) => `${bundle}/${p.package}`)
  );
  const report: Report = JSON.parse(await runOracleScript("scripts/coreml/validate.py", packages));
  assert.equal(report.packages.length, packages.length);
  for (const { bundle, manifest } of exported.values()) {
    for (const piece of manifest.pieces) {
      const checked = report.packages.find((p) => p.path === `${bundle}/${piece.package}`);
      assert.ok(checked, piece.package);
      assert.equal(checked.specificationVersion, 9);
      assert.deepEqual(
        Object.keys(checked.functions).sort(),
        piece.functions.map((f) => f.name).sort(),
      );
      assert.equal(checked.defaultFunctionName, manifest.export.multifunction ? "decode" : "");
      for (const spec of piece.functions) {
        const inferred: { inputs: unknown[]; outputs: unknown[] } = checked.functions[spec.name]!;
        assert.deepEqual(inferred.inputs, spec.inputs, `${piece.package} ${spec.name} inputs`);
        assert.deepEqual(inferred.outputs, spec.outputs, `${piece.package} ${spec.name} outputs`);
      }
    }
  }
});

/** Dumps weights dequantized by coremltools and checks them against NumPy's quantization. */
async function checkWeights(
  variant: Variant,
  piece: string,
  weights: {
    value: string;
    tensor: string;
    rows: [number, number];
    rope?: boolean;
    embedding?: boolean;
  }[],
) {
  const { bundle, manifest } = exported.get(variant.name)!;
  const dir = await Deno.makeTempDir();
  const fn = manifest.export.multifunction ? "decode" : "main";
  const values = weights.flatMap((w) => ["--value", `${fn}:${w.value}=${dir}/${w.value}.f32`]);
  await runOracleScript("scripts/coreml/validate.py", [...values, `${bundle}/${piece}`]);
  for (const w of weights) {
    const scheme = w.embedding ? variant.embedding : variant.linear;
    const out = await runOracleScript("scripts/coreml/check_quantization.py", [
      "--checkpoint",
      tiny.checkpoint,
      "--tensor",
      w.tensor,
      "--rows",
      w.rows.join(":"),
      "--bits",
      String(scheme.bits === 32 && manifest.export.dtype === "fp16" ? 16 : scheme.bits),
      "--group",
      String(scheme.group),
      "--dtype",
      manifest.export.dtype,
      ...(w.rope ? ["--rope-head-dim", String(headDim)] : []),
      `${dir}/${w.value}.f32`,
    ]);
    assert.equal(JSON.parse(out).mismatches, 0);
  }
}

for (const variant of VARIANTS.filter((v) => v.options.graphBreaks !== false)) {
  Deno.test(`exported weights dequantize as NumPy quantizes them: ${variant.name}`, async () => {
    const parts = variant.options.targetSplitSize === 16 ? 4 : 1;
    const rows = TINY_PARAMS.dim / parts;
    await checkWeights(variant, "blocks.mlpackage", [
      {
        value: "layers_0_wq_part0_weight",
        tensor: "layers.0.attention.wq.weight",
        rows: [0, rows],
        rope: true,
      },
      {
        value: `layers_1_wk_part0_weight`,
        tensor: "layers.1.attention.wk.weight",
        rows: [0, Math.min(rows, 32)],
        rope: true,
      },
      {
        value: "layers_1_w2_part0_weight",
        tensor: "layers.1.feed_forward.w2.weight",
        rows: [0, rows],
      },
    ]);
    await checkWeights(variant, "embedding.mlpackage", [
      {
        value: "embedding_table",
        tensor: "tok_embeddings.weight",
        rows: [0, TINY_PARAMS.vocab_size],
        embedding: true,
      },
    ]);
  });
}
