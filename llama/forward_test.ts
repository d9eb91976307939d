import { attentionWindow } from "./attention_window.ts";
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

Deno.test("EagerLlama sequences given in chunks compute what one forward computes", async () => {
  const fixture = fixtures.find((f) => f.name === "kjv")!;
  using model = await openModel({ checkpoint: fixture.checkpoint, params: fixture.params });
  const eager = await EagerLlama.load(model.source, model.config);
  const tokens = fixture.sequences[0]!.tokens;
  const sequence = eager.begin();
  const chunks = [tokens.slice(0, 5), tokens.slice(5, 6), tokens.slice(6)];
  const logits = chunks.map((chunk) => sequence.next(chunk));
  assert.equal(sequence.position, tokens.length);
  const joined = new Float32Array(logits.reduce((n, l) => n + l.length, 0));
  logits.reduce((offset, l) => (joined.set(l, offset), offset + l.length), 0);
  assert.deepEqual(joined, eager.forward(tokens));
});

Deno.test("EagerLlama sequences with a window forget what lies beyond it", async () => {
  const fixture = fixtures.find((f) => f.name === "kjv")!;
  using model = await openModel({ checkpoint: fixture.checkpoint, params: fixture.params });
  const eager = await EagerLlama.load(model.source, model.config);
  const tokens = fixture.sequences[0]!.tokens.slice(0, 12);
  const vocab = model.config.vocabSize;
  const full = eager.forward(tokens);
  const wide = eager.begin(attentionWindow(tokens.length - 1, undefined));
  assert.deepEqual([...wide.next(tokens.slice(0, 7)), ...wide.next(tokens.slice(7))], [...full]);
  // With a window of 3, positions 0 to 3 still see every token before them; position 4 does not.
  const narrow = eager.begin(attentionWindow(3, undefined));
  const logits = [...narrow.next(tokens.slice(0, 7)), ...narrow.next(tokens.slice(7))];
  assert.deepEqual(logits.slice(0, 4 * vocab), [...full.subarray(0, 4 * vocab)]);
  assert.notDeepEqual(logits.slice(4 * vocab, 5 * vocab), [...full.subarray(4 * vocab, 5 * vocab)]);
  assert.throws(() => eager.begin(attentionWindow(-1, undefined)), /a cache of -1/);
});
