import assert from "node:assert/strict";
import { lintBundle, lintProgram, type ProgramFacts } from "./lint.ts";
import { ANE_LIMITS } from "./ane_limits.ts";
import { exportTinyBundle } from "../testing/tiny_bundle.ts";

/** A program well within every limit. */
const fine: ProgramFacts = {
  piece: "blocks",
  weightBytes: 4.6e8,
  layers: 16,
  ops: 900,
  largestAxis: 8192,
  lookupTableAxis: 0,
  largestRank: 4,
  fp32Ops: 0,
  inputBytes: 1e6,
  outputBytes: 1e6,
};

const summary = (facts: Partial<ProgramFacts>) =>
  lintProgram({ ...fine, ...facts }).map((f) => `${f.severity}: ${f.message}`);

Deno.test("lintProgram() finds nothing within the limits", () => {
  assert.deepEqual(lintProgram(fine), []);
});

Deno.test("lintProgram() reports weights past the margin, then past the reported limit", () => {
  assert.deepEqual(summary({ weightBytes: 1.2e9 }), [
    "warning: 1.20 GB of weights, above the 1 GB margin exports keep",
  ]);
  assert.deepEqual(summary({ weightBytes: 3.4e9 }), [
    "error: 3.40 GB of weights, above the 1.5 GB one program is reported to compile with",
  ]);
  const [finding] = lintProgram({ ...fine, weightBytes: 3.4e9 });
  assert.equal(finding!.source, ANE_LIMITS.programWeightBytes.source);
  assert.match(finding!.fix, /--num_chunks/);
});

Deno.test("lintProgram() reports layers past those known to run, then where failures begin", () => {
  assert.deepEqual(summary({ layers: 24 }), []);
  assert.deepEqual(summary({ layers: 30 }), [
    "warning: 30 layers in one program, more than the 24 known to run",
  ]);
  assert.deepEqual(summary({ layers: 32 }), [
    "error: 32 layers in one program; programs of 31 or more are reported to fail at execution",
  ]);
});

Deno.test("lintProgram() reports axes above 65,536, rank 5 and fp32 compute", () => {
  assert.deepEqual(summary({ largestAxis: 65536 }), []);
  assert.deepEqual(summary({ largestAxis: 128256 }), [
    "error: an axis of 128256, above the 65536 allowed",
  ]);
  // An embedding table alone in its piece is read on the CPU; among the layers it is a warning.
  assert.deepEqual(summary({ layers: 0, lookupTableAxis: 128256 }), []);
  assert.deepEqual(summary({ lookupTableAxis: 128256 }), [
    "warning: an embedding table of 128256 rows in the program of the layers; its lookup runs " +
    "on the CPU, whose axes have no 65536 limit",
  ]);
  assert.deepEqual(summary({ largestRank: 5 }), ["warning: a rank-5 tensor, above rank 4"]);
  assert.match(summary({ fp32Ops: 3 })[0]!, /^warning: 3 operations compute in fp32/);
});

Deno.test("lintBundle() reads every program of an exported bundle", async () => {
  const bundle = await exportTinyBundle({ multifunction: true, numChunks: 2 });
  const report = await lintBundle(bundle);
  assert.deepEqual(report.findings, []);
  assert.deepEqual(report.programs.map((p) => [p.piece, p.layers]), [
    ["embedding", 0],
    ["blocks_0", 1],
    ["blocks_1", 1],
    ["head", 0],
  ]);
  const blocks = report.programs[1]!;
  // Key and value caches [1, 2, C, 16] in fp16 are most of a block's inputs.
  assert.ok(blocks.inputBytes > 2 * 2 * 16 * 2 && blocks.ops > 0 && blocks.largestRank === 4);
});

Deno.test("docs/coreml.md lists every limit with the value ane_limits.ts holds", async () => {
  const docs = await Deno.readTextFile(new URL("../docs/coreml.md", import.meta.url));
  const shown = (value: number) =>
    value >= 1e9 ? `${value / 1e9} GB` : value === 4 ? "4" : String(value);
  for (const [name, limit] of Object.entries(ANE_LIMITS)) {
    const row = docs.split("\n").find((line) => line.startsWith(`| \`${name}\``));
    assert.ok(row !== undefined, `no row for ${name}`);
    assert.ok(row.includes(`| ${shown(limit.value)}`), `${name}: ${row}`);
  }
});
