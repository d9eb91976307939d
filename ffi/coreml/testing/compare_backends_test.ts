import assert from "node:assert/strict";
import { compareBackends, compareLogits } from "./compare_backends.ts";
import { CoremlBackend } from "../../../runtime/backend/coreml.ts";
import { buildFakeLibrary } from "./fake_library.ts";
import { exportTinyBundle } from "../../../testing/tiny_bundle.ts";

Deno.test("compareLogits() accepts fp16-sized differences and flags larger ones", () => {
  const reference = [1, 5, 2, -3];
  const close = compareLogits(reference, [1.05, 5.08, 1.97, -3.1]);
  assert.equal(close.logitsAgree, true);
  assert.equal(close.referenceToken, 1);
  assert.equal(close.candidateToken, 1);
  assert.ok(Math.abs(close.maxAbsDifference - 0.1) < 1e-9);
  assert.equal(close.referenceMargin, 3);
  const far = compareLogits(reference, [1, 5, 2.5, -3]);
  assert.equal(far.logitsAgree, false);
  assert.equal(compareLogits(reference, [1, 5, NaN, -3]).logitsAgree, false);
  assert.throws(() => compareLogits([1, 2], [1]), RangeError);
});

Deno.test("compareLogits() calls a token flip between near-equal logits a near tie, else not", () => {
  const tie = compareLogits([3, 3.05, 0], [3.06, 3.04, 0]);
  assert.equal(tie.referenceToken, 1);
  assert.equal(tie.candidateToken, 0);
  assert.equal(tie.nearTie, true);
  const flip = compareLogits([3, 4, 0], [4, 3, 0], { atol: 2, rtol: 0 });
  assert.equal(flip.nearTie, true);
  assert.equal(compareLogits([3, 4, 0], [4, 3, 0], { atol: 0.1, rtol: 0 }).nearTie, false);
});

Deno.test("compareBackends() feeds both backends the same tokens and compares every step", async () => {
  // Two fake Core ML bridges return the same constant logits: the plumbing is what is tested.
  await using fake = await buildFakeLibrary();
  const bundle = await exportTinyBundle({ inputLen: 4, maxContextLen: 24 });
  const cacheDir = await Deno.makeTempDir();
  const backend = () => CoremlBackend.create({ library: fake.path, cacheDir });
  const result = await compareBackends({
    bundle,
    prompt: [1, 5, 9, 2, 7],
    steps: 6,
    reference: await backend(),
    candidate: await backend(),
  });
  assert.equal(result.agree, true);
  assert.equal(result.steps.length, 7);
  for (const step of result.steps) {
    assert.equal(step.maxAbsDifference, 0);
    assert.equal(step.candidateToken, step.referenceToken);
  }
  // Prompt of 5 in calls of 4 (2 calls), then 6 steps of one token each, on both backends.
  const embeddingCalls = fake.calls().filter((c) =>
    c.call === "predict" && (c.inputs as { name: string }[])[0]!.name === "tokens"
  );
  assert.equal(embeddingCalls.length, 2 * (2 + 6));
});
