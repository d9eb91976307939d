/**
 * Lookahead decoding: exactly greedy decoding's tokens, in fewer model calls.
 *
 *   deno run -A lookahead.ts BUNDLE
 *
 * BUNDLE is a single-function bundle, e.g. the one export_and_generate.ts writes.
 */

import { generate, loadModel, loadTokenizer } from "@llamane/llamane";

const bundle = Deno.args[0];
if (bundle === undefined) throw new Error("Usage: lookahead.ts BUNDLE");

using model = await loadModel(bundle);
const tokenizer = await loadTokenizer(`${bundle}/tokenizer.model`);
const prompt = "In the beginning";

/** Generates 48 tokens and returns their ids, the text, and the number of model calls. */
async function continuation(options: Parameters<typeof generate>[3]) {
  const generation = generate(model, tokenizer, prompt, { maxNewTokens: 48, ...options });
  const ids: number[] = [];
  let text = prompt;
  for await (const { token, text: piece } of generation) {
    if (token !== null) ids.push(token);
    text += piece;
  }
  return { ids, text, calls: generation.stats.modelCalls };
}

// Plain greedy decoding: one model call per token.
const greedy = await continuation({ temperature: 0 });

// Lookahead: n-grams of 5, a window of 4, up to 4 verified guesses per call. A call must fit
// the bundle's call length: (N - 1) * (W + G) = 32 tokens here.
const lookahead = await continuation({
  lookahead: { ngramSize: 5, windowSize: 4, verifications: 4 },
});

console.log(lookahead.text);
console.log(`same tokens as greedy: ${lookahead.ids.join() === greedy.ids.join()}`);
console.log(`model calls: greedy ${greedy.calls}, lookahead ${lookahead.calls}`);
