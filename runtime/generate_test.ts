import assert from "node:assert/strict";
import { exportModel } from "../export/export_model.ts";
import { loadTokenizer } from "../tokenizer/load.ts";
import { loadModel } from "./load_model.ts";
import { generate, MAX_PROMPT_CHARACTERS } from "./generate.ts";

const bundle = `${await Deno.makeTempDir()}/kjv.llamane`;
await exportModel({
  checkpoint: "models/kjv-tiny/consolidated.00.pth",
  params: "models/kjv-tiny/params.json",
  output: bundle,
});

Deno.test("generate() streams text that continues the prompt exactly as decoding all ids does", async () => {
  using model = await loadModel(bundle, { backend: "cpu" });
  const tokenizer = await loadTokenizer(`${bundle}/tokenizer.model`);
  for (
    const options of [{ temperature: 0 }, { temperature: 0.9, topP: 0.95, seed: 3 }, {
      lookahead: {},
    }]
  ) {
    const generation = generate(model, tokenizer, "And God said", { maxNewTokens: 40, ...options });
    let text = "";
    const ids: number[] = [];
    for await (const event of generation) {
      text += event.text;
      if (event.token !== null) ids.push(event.token);
    }
    const prompt = tokenizer.encode("And God said", { bos: true });
    assert.equal("And God said" + text, tokenizer.decode([...prompt, ...ids]));
    assert.equal(generation.stats.generatedTokens, ids.length);
    assert.equal(generation.stats.promptTokens, prompt.length);
  }
});

Deno.test("generate() with a seed repeats itself, and sampling differs from greedy", async () => {
  using model = await loadModel(bundle, { backend: "cpu" });
  const tokenizer = await loadTokenizer(`${bundle}/tokenizer.model`);
  const run = async (options: object) => {
    const ids: number[] = [];
    for await (
      const e of generate(model, tokenizer, "In the beginning", { maxNewTokens: 30, ...options })
    ) if (e.token !== null) ids.push(e.token);
    return ids;
  };
  const sampled = await run({ temperature: 1, topP: 1, seed: 11 });
  assert.deepEqual(await run({ temperature: 1, topP: 1, seed: 11 }), sampled);
  assert.notDeepEqual(await run({ temperature: 0 }), sampled);
});

Deno.test("generate() refuses a tokenizer with ids the model cannot embed", async () => {
  using model = await loadModel(bundle, { backend: "cpu" });
  // A byte-level BPE of a few thousand ranks, against the KJV model's 1024-token vocabulary.
  const tokenizer = await loadTokenizer("testdata/tokenizer/kjv_tiktoken.model");
  assert.throws(
    () => generate(model, tokenizer, "And God said"),
    /the tokenizer has \d+ ids but the model only 1024; use the tokenizer the model was trained with/,
  );
});

Deno.test("generate() refuses a prompt longer than the limit before encoding it", async () => {
  using model = await loadModel(bundle, { backend: "cpu" });
  const tokenizer = await loadTokenizer(`${bundle}/tokenizer.model`);
  const prompt = "a".repeat(MAX_PROMPT_CHARACTERS + 1);
  assert.throws(
    () => generate(model, tokenizer, prompt),
    new RegExp(`the prompt is ${MAX_PROMPT_CHARACTERS + 1} characters, more than the`),
  );
});

Deno.test("two generations at once on one model give the text each gives alone", async () => {
  using model = await loadModel(bundle, { backend: "cpu" });
  const tokenizer = await loadTokenizer(`${bundle}/tokenizer.model`);
  const text = async (prompt: string) => {
    let out = "";
    const options = { temperature: 0, maxNewTokens: 24 };
    for await (const e of generate(model, tokenizer, prompt, options)) out += e.text;
    return out;
  };
  const alone = [await text("And God said"), await text("In the beginning")];
  assert.deepEqual(await Promise.all([text("And God said"), text("In the beginning")]), alone);
  assert.notEqual(alone[0], alone[1]);
});

Deno.test("disposing the model during generate() ends the generation with a clear error", async () => {
  const model = await loadModel(bundle, { backend: "cpu" });
  const tokenizer = await loadTokenizer(`${bundle}/tokenizer.model`);
  const options = { temperature: 0, maxNewTokens: 20 };
  const events = generate(model, tokenizer, "And God said", options)[Symbol.asyncIterator]();
  await events.next();
  // The next token needs a decode call; let it reach the native library, then dispose.
  const next = events.next();
  await Promise.resolve();
  model[Symbol.dispose]();
  await assert.rejects(next, /BadResource: Cannot run .*(has been|is) disposed/);
});
