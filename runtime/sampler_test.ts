import assert from "node:assert/strict";
import { argmax, penalizeRepeats, sampleToken, seededRandom } from "./sampler.ts";

Deno.test("argmax() returns the first maximum within the selected row", () => {
  assert.equal(argmax([1, 5, 5, 2]), 1);
  assert.equal(argmax([9, 9, 1, 3, 2, 9], 2, 3), 1);
});

Deno.test("sampleToken() is greedy at temperature 0", () => {
  const random = () => assert.fail("greedy sampling must not draw random numbers");
  assert.equal(sampleToken([0.1, 3, 2], { temperature: 0, topP: 0.9 }, random), 1);
});

Deno.test("sampleToken() never leaves the top-p nucleus", () => {
  // softmax([ln 6, ln 3, ln 1]) = [0.6, 0.3, 0.1]: top_p 0.85 keeps the first two tokens only.
  const logits = [Math.log(6), Math.log(3), Math.log(1)];
  const random = seededRandom(1);
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) {
    counts[sampleToken(logits, { temperature: 1, topP: 0.85 }, random)]!++;
  }
  assert.equal(counts[2], 0);
  // Within the nucleus the odds stay 2:1.
  assert.ok(Math.abs(counts[0]! / 3000 - 2 / 3) < 0.04, `counts ${counts}`);
});

Deno.test("sampleToken() follows the tempered distribution with top_p 1", () => {
  const logits = [0, Math.log(3)];
  const random = seededRandom(7);
  let ones = 0;
  for (let i = 0; i < 4000; i++) ones += sampleToken(logits, { temperature: 1, topP: 1 }, random);
  assert.ok(Math.abs(ones / 4000 - 0.75) < 0.03, `frequency ${ones / 4000}`);
});

Deno.test("seededRandom() repeats for a seed and stays in [0, 1)", () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const values = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(values, Array.from({ length: 1000 }, () => b()));
  assert.ok(values.every((v) => v >= 0 && v < 1));
  assert.notDeepEqual(values.slice(0, 10), Array.from({ length: 10 }, seededRandom(43)));
});

Deno.test("sampleToken() with top_k keeps the k most likely, and top_k 1 is greedy", () => {
  // softmax([ln 5, ln 3, ln 2]) = [0.5, 0.3, 0.2]: top_k 2 leaves 0.5 : 0.3.
  const logits = [Math.log(3), Math.log(5), Math.log(2)];
  const random = seededRandom(5);
  const counts = [0, 0, 0];
  for (let i = 0; i < 4000; i++) {
    counts[sampleToken(logits, { temperature: 1, topP: 1, topK: 2 }, random)]!++;
  }
  assert.equal(counts[2], 0);
  assert.ok(Math.abs(counts[1]! / 4000 - 5 / 8) < 0.04, `counts ${counts}`);
  for (let i = 0; i < 200; i++) {
    assert.equal(sampleToken(logits, { temperature: 5, topP: 1, topK: 1 }, random), 1);
  }
});

Deno.test("sampleToken() with min_p drops tokens less likely than that share of the best", () => {
  // Probabilities 0.6, 0.3, 0.1 relative to the best: 1, 0.5, 0.17; min_p 0.4 keeps two.
  const logits = [Math.log(6), Math.log(3), Math.log(1)];
  const random = seededRandom(9);
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) {
    counts[sampleToken(logits, { temperature: 1, topP: 1, minP: 0.4 }, random)]!++;
  }
  assert.equal(counts[2], 0);
  assert.ok(Math.abs(counts[0]! / 3000 - 2 / 3) < 0.04, `counts ${counts}`);
});

Deno.test("penalizeRepeats() divides positive and multiplies negative logits of recent tokens once", () => {
  const logits = [2, -2, 4, 1];
  const penalized = penalizeRepeats(logits, [0, 1, 0, 7], 2);
  assert.deepEqual([...penalized], [2 / 2, -2 * 2, 4, 1]);
  assert.deepEqual(logits, [2, -2, 4, 1]);
  // Greedy then prefers the unpenalised token 3 (2) over the penalised token 0 (3 / 2).
  assert.equal(argmax(penalizeRepeats([3, 0, 0, 2], [0], 2)), 3);
});
