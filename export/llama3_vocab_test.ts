/**
 * Llama 3's vocabulary of 128,256 entries, wider than any Neural Engine axis may be, on a small
 * random model: the head leaves its logits in parts that join into the unsplit head's logits,
 * coremltools type-checks every piece, and lint holds no axis against the embedding's table.
 */

import assert from "node:assert/strict";
import { exportModel } from "./export_model.ts";
import type { ExportOptions } from "./options.ts";
import { lintBundle } from "../bundle/lint.ts";
import { readManifest } from "../bundle/manifest.ts";
import { runOracleScript } from "../testing/oracle_python.ts";
import { callLogitBytes } from "../testing/tiny_bundle.ts";
import { TINY_PARAMS, writeTinyLlama } from "../testing/tiny_llama.ts";

const LLAMA3_VOCAB = 128256;
const tiny = await writeTinyLlama({ ...TINY_PARAMS, n_layers: 1, vocab_size: LLAMA3_VOCAB });

async function exportLlama3Vocab(options: Partial<ExportOptions>): Promise<string> {
  const output = `${await Deno.makeTempDir()}/llama3-vocab.llamane`;
  await exportModel({
    checkpoint: tiny.checkpoint,
    params: tiny.params,
    output,
    inputLen: 8,
    maxContextLen: 64,
    ...options,
  });
  return output;
}

const split = await exportLlama3Vocab({});
// An axis limit above the vocabulary keeps the head's one logits output.
const unsplit = await exportLlama3Vocab({ maxLogitsAxis: 2 * LLAMA3_VOCAB });

Deno.test("a Llama 3 vocabulary leaves the head in parts of at most 65,536", async () => {
  const head = (await readManifest(split)).pieces.at(-1)!.functions[0]!;
  // 128,256 rows split into the 8 parts --max_splits allows: 16,032 each.
  assert.deepEqual(
    head.outputs.map((io) => [io.name, io.shape.at(-1)]),
    Array.from({ length: 8 }, (_, i) => [`logits_${i}`, 16032]),
  );
  const whole = (await readManifest(unsplit)).pieces.at(-1)!.functions[0]!;
  assert.deepEqual(whole.outputs.map((io) => [io.name, io.shape.at(-1)]), [["logits", 128256]]);
});

Deno.test("the parts of a Llama 3 head join into the unsplit head's logits, bit for bit", async () => {
  const parts = await callLogitBytes(split);
  assert.equal(parts[0]!.byteLength, 8 * LLAMA3_VOCAB * 2, "a prefill call's fp16 logits");
  assert.deepEqual(parts, await callLogitBytes(unsplit));
});

Deno.test("coremltools type-checks every piece of the Llama 3 vocabulary bundle", async () => {
  const manifest = await readManifest(split);
  const packages = manifest.pieces.map((p) => `${split}/${p.package}`);
  const report: {
    packages: { path: string; functions: Record<string, { outputs: unknown[] }> }[];
  } = JSON.parse(await runOracleScript("scripts/coreml/validate.py", packages));
  const head = manifest.pieces.at(-1)!;
  const checked = report.packages.find((p) => p.path === `${split}/${head.package}`)!;
  assert.deepEqual(checked.functions[head.functions[0]!.name]!.outputs, head.functions[0]!.outputs);
});

Deno.test("lint finds no axis above 65,536 but the embedding table's, and lets it be", async () => {
  const report = await lintBundle(split);
  assert.deepEqual(report.findings, []);
  assert.deepEqual(
    report.programs.map((p) => [p.piece, p.largestAxis <= 65536, p.lookupTableAxis]),
    [["embedding", true, LLAMA3_VOCAB], ["blocks", true, 0], ["head", true, 0]],
  );
  // A float table is read by the gather directly, not through a dequantizing constexpr.
  const float = await lintBundle(await exportLlama3Vocab({ embeddingQuantize: "none" }));
  assert.deepEqual(float.findings, []);
  assert.equal(float.programs[0]!.lookupTableAxis, LLAMA3_VOCAB);
  // In one program with the layers, the lookup is worth a warning.
  const whole = await lintBundle(await exportLlama3Vocab({ graphBreaks: false }));
  assert.deepEqual(whole.findings.map((f) => [f.severity, f.fix]), [
    ["warning", "export without --no_graph_breaks, so that the lookup is a piece of its own"],
  ]);
});
