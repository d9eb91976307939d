import assert from "node:assert/strict";
import { exportChatBundle } from "../testing/chat_bundle.ts";
import { ChatTemplate } from "../tokenizer/chat/chat_template.ts";
import { encodeChat, LLAMA3_CHAT_TEMPLATE } from "../tokenizer/mod.ts";
import { loadTokenizer } from "../tokenizer/load.ts";
import { Chat } from "./chat.ts";
import { generate } from "./generate.ts";
import { loadModel } from "./load_model.ts";

const bundle = await exportChatBundle();
const tokenizer = await loadTokenizer(`${bundle}/tokenizer.json`);
const template = ChatTemplate.parse(LLAMA3_CHAT_TEMPLATE, "llama3");

async function answer(generation: AsyncIterable<{ token: number | null }>): Promise<number[]> {
  const ids: number[] = [];
  for await (const { token } of generation) if (token !== null) ids.push(token);
  return ids;
}

Deno.test("Chat keeps the cache across turns and answers as a fresh run of the conversation", async () => {
  using model = await loadModel(bundle, { backend: "cpu" });
  const chat = new Chat(model, tokenizer, template, {
    system: "You are terse.",
    temperature: 0,
    maxNewTokens: 6,
  });
  let previousIds = 0;
  for (const message of ["Hello!", "Name three primes.", "Thanks — 🙂"]) {
    const conversation = [...chat.messages, { role: "user", content: message }];
    const { ids } = await encodeChat(tokenizer, template, {
      messages: conversation,
      bosToken: "<|begin_of_text|>",
      eosToken: "<|eot_id|>",
    });
    const generation = await chat.send(message);
    const turn = await answer(generation);
    // Only what the cache did not hold was prefilled: at least the previous prompt was reused.
    assert.ok(generation.stats.promptTokens <= ids.length - previousIds, `${message}`);
    previousIds = ids.length;
    const fresh = await answer(
      generate(model, tokenizer, ids, { temperature: 0, maxNewTokens: 6 }),
    );
    assert.deepEqual(turn, fresh, message);
    assert.equal(chat.messages.at(-1)!.content, tokenizer.decode(turn));
  }
  assert.equal(chat.messages.length, 7);
  chat.reset();
  assert.deepEqual(chat.messages, [{ role: "system", content: "You are terse." }]);
});

Deno.test("the bundle's stop tokens and BOS choice are generate()'s defaults", async () => {
  using model = await loadModel(bundle, { backend: "cpu" });
  const eot = tokenizer.encode("<|eot_id|>", { allowedSpecial: "all" })[0]!;
  assert.deepEqual(model.manifest.tokenizer!.stopTokens, [eot]);
  const generation = generate(model, tokenizer, "Hi", { temperature: 0, maxNewTokens: 2 });
  await answer(generation);
  assert.equal(generation.stats.promptTokens, tokenizer.encode("Hi", { bos: true }).length);
  assert.throws(
    () => generate(model, tokenizer, [1, 5000], {}),
    /Cannot generate: prompt token 5000 is not an id below 3072/,
  );
});

Deno.test("generate() samples only ids the tokenizer has, in a vocabulary padded for the model", async () => {
  using model = await loadModel(bundle, { backend: "cpu" });
  assert.ok(model.manifest.model.vocabSize > tokenizer.vocabSize);
  const options = { temperature: 5, topP: 1, seed: 1, maxNewTokens: 200, stopTokens: [] };
  const ids = await answer(generate(model, tokenizer, "Hi", options));
  assert.equal(ids.length, 200);
  assert.ok(ids.every((id) => id < tokenizer.vocabSize), `${ids.filter((id) => id >= 3011)}`);
});
