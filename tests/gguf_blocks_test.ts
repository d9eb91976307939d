/**
 * GGUF blocks carried over: Q8_0 and Q4_0 GGUFs of SmolLM2-135M and of the KJV model, quantized by
 * llama.cpp's Python package (scripts/fixtures/gguf_blocks/, made on first run), exported with
 * `keep`, their default. The bundles must dequantize to exactly llama.cpp's values and load and
 * type-check in coremltools (scripts/coreml/check_gguf_blocks.py), and generate the greedy tokens
 * of an fp32 bundle of those dequantized values when the CPU backend meets the kept weights with
 * f32 activations (`LLAMANE_CPU_ACTIVATIONS=f32`); with its default int8 activations they drift
 * apart, which the test prints. Tensors that cannot be kept fall back and say why; `keep` on a
 * checkpoint that is not a GGUF is refused.
 */

import assert from "node:assert/strict";
import { exportModel, type ExportSummary } from "../export/export_model.ts";
import { type ExportOptions, ExportOptionsError } from "../export/options.ts";
import { keepSummary } from "../export/weight_storage.ts";
import { loadTokenizer } from "../tokenizer/load.ts";
import { greedyTokensWith } from "../testing/greedy_tokens.ts";
import { runOracleScript } from "../testing/oracle_python.ts";

const ROOT = new URL("../", import.meta.url);
const FIXTURES = new URL("testdata/gguf_blocks/", ROOT).pathname;
const SMOLLM2 = new URL("testdata/smollm2/", ROOT).pathname;

const made = await new Deno.Command("bash", {
  args: [new URL("scripts/fixtures/gguf_blocks/make.sh", ROOT).pathname],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!made.success) throw new Error("scripts/fixtures/gguf_blocks/make.sh failed");

const kjvTokenizer = await loadTokenizer(new URL("models/kjv-tiny/tokenizer.model", ROOT));

interface Model {
  readonly name: string;
  readonly prompts: readonly (readonly number[])[];
  readonly newTokens: number;
  /** Split size giving several parts per linear, to show that splits keep whole blocks. */
  readonly targetSplitSize: number;
}

const MODELS: readonly Model[] = [
  {
    name: "smollm2",
    prompts: JSON.parse(await Deno.readTextFile(`${SMOLLM2}/prompts.json`)),
    newTokens: 48,
    targetSplitSize: 512,
  },
  {
    name: "kjv",
    prompts: ["And God said", "In the beginning", "Blessed are the", "And Jesus answered"]
      .map((text) => kjvTokenizer.encode(text, { bos: true })),
    newTokens: 32,
    targetSplitSize: 64,
  },
];

const SMALL_CALLS = { inputLen: 16, maxContextLen: 128 } as const;

async function exportTo(dir: string, name: string, options: ExportOptions): Promise<ExportSummary> {
  return await exportModel({ ...SMALL_CALLS, ...options, output: `${dir}/${name}.llamane` });
}

function firstDifference(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
}

for (const model of MODELS) {
  for (const type of ["q8_0", "q4_0"] as const) {
    Deno.test(`${model.name} ${type}: kept blocks dequantize to llama.cpp's values and decode as fp32 does`, async () => {
      const checkpoint = `${FIXTURES}/${model.name}.${type}.gguf`;
      const dir = await Deno.makeTempDir({ prefix: "llamane-gguf-blocks-" });
      try {
        const split = await exportTo(dir, "fp16", {
          checkpoint,
          targetSplitSize: model.targetSplitSize,
        });
        const kept = await exportTo(dir, "fp32", { checkpoint, dtype: "fp32" });
        for (const summary of [split, kept]) {
          assert.equal(summary.manifest.export.linearQuantize, "keep");
          assert.equal(summary.manifest.export.embeddingQuantize, "keep");
          assert.ok(summary.storage.length > 0);
          for (const { tensor, checkpointType, choice } of summary.storage) {
            assert.deepEqual(choice, { storage: { kind: "kept", dtype: checkpointType } }, tensor);
            assert.equal(checkpointType, type.toUpperCase(), tensor);
          }
        }
        const report = JSON.parse(
          await runOracleScript("scripts/coreml/check_gguf_blocks.py", [
            `${split.output}=${checkpoint}`,
            `${kept.output}=${checkpoint}`,
          ]),
        );
        // Every linear and the embedding of every piece: none written as float.
        for (const bundle of [split.output, kept.output]) {
          assert.equal(report[bundle].float, 0, bundle);
          assert.ok(report[bundle].blocks >= split.storage.length, JSON.stringify(report));
        }

        const float = await exportTo(dir, "float", {
          checkpoint,
          dtype: "fp32",
          linearQuantize: "none",
          embeddingQuantize: "none",
        });
        const want = await greedyTokensWith({}, float.output, model.prompts, model.newTokens);
        const exact = await greedyTokensWith(
          { LLAMANE_CPU_ACTIVATIONS: "f32" },
          kept.output,
          model.prompts,
          model.newTokens,
        );
        assert.deepEqual(exact, want);
        const int8 = await greedyTokensWith({}, kept.output, model.prompts, model.newTokens);
        console.log(
          `${model.name} ${type}, int8 activations: greedy tokens equal to fp32's for the first ` +
            int8.map((tokens, i) => firstDifference(tokens, want[i]!)).join(", ") +
            ` of ${model.newTokens}`,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

Deno.test("keep on a Q4_1 GGUF keeps its Q8_0 embedding and requantizes the rest, saying why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "llamane-gguf-blocks-" });
  try {
    const checkpoint = `${SMOLLM2}/q4_1.gguf`;
    const asked = await exportTo(dir, "keep", { checkpoint, linearQuantize: "keep" });
    const embedding = asked.storage.find((s) => s.tensor === "tok_embeddings.weight")!;
    assert.deepEqual(embedding.choice, { storage: { kind: "kept", dtype: "Q8_0" } });
    const linears = asked.storage.filter((s) => s.tensor !== "tok_embeddings.weight");
    assert.equal(linears.length, 30 * 7);
    for (const { checkpointType, choice } of linears) {
      assert.equal(checkpointType, "Q4_1");
      assert.deepEqual(choice.storage, { kind: "quantized", bits: 4, groupSize: 32 });
      assert.match(choice.fallback!, /Q4_1 adds a minimum to each block/);
    }
    assert.deepEqual(keepSummary(asked.storage), [
      "kept 1 Q8_0 tensor: int8 per block of 32 with the GGUF's own scales",
      "fell back for layers.0.attention.wq.weight, layers.0.attention.wk.weight and 208 more: " +
      "int4 per block of 32, requantized: Q4_1 adds a minimum to each block, which a symmetric " +
      "int4 block cannot hold",
    ]);
    // By default only the embedding is kept: the layer weights are not all Q8_0 or Q4_0.
    const defaults = await exportTo(dir, "defaults", { checkpoint });
    assert.equal(defaults.manifest.export.linearQuantize, "c4w");
    assert.equal(defaults.manifest.export.embeddingQuantize, "keep");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keep on a checkpoint that is not a GGUF is refused before anything is written", async () => {
  const dir = await Deno.makeTempDir();
  const kjv = {
    checkpoint: new URL("models/kjv-tiny/consolidated.00.pth", ROOT).pathname,
    params: new URL("models/kjv-tiny/params.json", ROOT).pathname,
  };
  for (const asked of [{ linearQuantize: "keep" }, { embeddingQuantize: "keep" }] as const) {
    await assert.rejects(
      () => exportTo(dir, "refused", { ...kjv, ...asked }),
      (error: Error) =>
        error instanceof ExportOptionsError &&
        /keep carries a GGUF's Q8_0 and Q4_0 blocks over, but .*consolidated\.00\.pth is a pth checkpoint/
          .test(error.message),
    );
  }
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  // Without keep, the defaults stay the seed's.
  const summary = await exportTo(dir, "defaults", kjv);
  assert.equal(summary.manifest.export.linearQuantize, "c4w");
  assert.equal(summary.manifest.export.embeddingQuantize, "8,0");
  await Deno.remove(dir, { recursive: true });
});
