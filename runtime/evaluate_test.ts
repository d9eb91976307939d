import { type AttentionWindow, attentionWindow } from "../llama/attention_window.ts";
import assert from "node:assert/strict";
import { exportTinyBundle } from "../testing/tiny_bundle.ts";
import type { EagerSequence } from "../llama/forward.ts";
import { CpuBackend } from "./backend/cpu.ts";
import { bundleLogits } from "./compare.ts";
import { evaluate, type ReferenceModel } from "./evaluate.ts";
import { LoadedModel } from "./model.ts";

const bundle = await exportTinyBundle({ dtype: "fp32", inputLen: 4, maxContextLen: 16 });
const model = await LoadedModel.load(bundle, await CpuBackend.create());
const vocab = model.manifest.model.vocabSize;
const tokens = Array.from({ length: 30 }, (_, i) => (i * 37 + 5) % vocab);

/** A reference that predicts every token alike: its figures have closed forms. */
function uniformReference(windows: AttentionWindow[]): ReferenceModel {
  return {
    config: model.manifest.model,
    begin(window): EagerSequence {
      windows.push(window);
      let position = 0;
      return {
        get position() {
          return position;
        },
        next(chunk) {
          position += chunk.length;
          return new Float32Array(chunk.length * vocab);
        },
      };
    },
  };
}

Deno.test("evaluate() against a uniform reference: its cross-entropy is log V, KL has a closed form", async () => {
  const windows: AttentionWindow[] = [];
  const progress: [number, number][] = [];
  const result = await evaluate(model, [tokens, tokens.slice(0, 9)], {
    reference: uniformReference(windows),
    onProgress: (scored, total) => progress.push([scored, total]),
  });
  const window = attentionWindow(
    model.manifest.export.cacheLen,
    model.manifest.model.trainedContext,
  );
  assert.deepEqual(windows, [window, window]);
  assert.equal(result.tokens, 39);
  assert.equal(result.positions, 37);
  assert.deepEqual(progress.at(-1), [37, 37]);
  assert.equal(progress.length, Math.ceil(29 / 4) + Math.ceil(8 / 4));

  // KL(u || q) = -log V - (1/V) sum_v log q_v, from the bundle's logits fed the same way.
  let kl = 0;
  let nll = 0;
  let topIsZero = 0;
  for (const sequence of [tokens, tokens.slice(0, 9)]) {
    const rows = await bundleLogits(model, sequence.slice(0, -1));
    for (let t = 0; t + 1 < sequence.length; t++) {
      const row = Array.from(rows.subarray(t * vocab, (t + 1) * vocab));
      const lse = Math.log(row.reduce((s, x) => s + Math.exp(x), 0));
      const meanLogQ = row.reduce((s, x) => s + x - lse, 0) / vocab;
      kl += -Math.log(vocab) - meanLogQ;
      nll += lse - row[sequence[t + 1]!]!;
      if (row.indexOf(Math.max(...row)) === 0) topIsZero++;
    }
  }
  assert.ok(Math.abs(result.reference!.meanKlDivergence - kl / 37) < 1e-9);
  assert.ok(Math.abs(result.crossEntropy - nll / 37) < 1e-9);
  assert.ok(Math.abs(result.reference!.crossEntropy - Math.log(vocab)) < 1e-12);
  assert.equal(result.perplexity, Math.exp(result.crossEntropy));
  // A uniform row's first maximum is id 0: agreement is the share of rows whose top token is 0.
  assert.equal(result.reference!.top1Agreement, topIsZero / 37);
});

Deno.test("evaluate() refuses nothing to predict and a reference of another shape", async () => {
  await assert.rejects(() => evaluate(model, [[1], []]), /at least 2 tokens/);
  const other: ReferenceModel = {
    ...uniformReference([]),
    config: { ...model.manifest.model, nLayers: model.manifest.model.nLayers + 1 },
  };
  await assert.rejects(
    () => evaluate(model, [tokens], { reference: other }),
    /its shape differs from the bundle's \(nLayers \d+ \(bundle\) vs \d+ \(reference\)\)/,
  );
});
