import assert from "node:assert/strict";
import { EagerLlama } from "./forward.ts";
import { openModel } from "./open.ts";
import { argmax } from "../runtime/sampler.ts";
import { maxAbsDifference, oracleFixtures } from "../testing/oracle_fixtures.ts";

const fixtures = await oracleFixtures();

Deno.test("the oracle fixtures are present", () => {
  assert.ok(fixtures.length >= 3, `found ${fixtures.length} fixtures under testdata/oracle`);
});

for (const fixture of fixtures) {
  Deno.test(`EagerLlama.forward() matches PyTorch on fixture "${fixture.name}"`, async () => {
    using model = await openModel(
      { checkpoint: fixture.checkpoint, params: fixture.params },
      fixture.ropeScaleFactor === undefined ? {} : { ropeScaleFactor: fixture.ropeScaleFactor },
    );
    const eager = await EagerLlama.load(model.source, model.config);
    for (const sequence of fixture.sequences) {
      const logits = eager.forward(sequence.tokens);
      assert.ok(
        maxAbsDifference(logits, sequence.logits) <= 1e-4,
        `max |difference| ${maxAbsDifference(logits, sequence.logits)}`,
      );
      for (let t = 0; t < sequence.tokens.length; t++) {
        assert.equal(
          argmax(logits, t * sequence.vocab, sequence.vocab),
          argmax(sequence.logits, t * sequence.vocab, sequence.vocab),
          `argmax at ${t}`,
        );
      }
    }
  });
}

Deno.test("EagerLlama.forward() rejects tokens outside the vocabulary", async () => {
  const fixture = fixtures[0]!;
  using model = await openModel({ checkpoint: fixture.checkpoint, params: fixture.params });
  const eager = await EagerLlama.load(model.source, model.config);
  assert.throws(() => eager.forward([]), /the token sequence is empty/);
  assert.throws(
    () => eager.forward([0, model.config.vocabSize]),
    /token \d+ at position 1 is outside \[0, \d+\)/,
  );
});
