/**
 * Lookahead decoding: exactly greedy decoding's tokens, in fewer model calls.
 *
 *   deno run -A lookahead.ts BUNDLE
 *
 * BUNDLE is a single-function bundle, e.g. the one export_and_generate.ts writes.
 */

import { generate, loadModel, loadTokenizer, LookaheadDecoder } from "@llamane/llamane";

const bundle = Deno.args[0];
if (bundle === undefined) throw new Error("Usage: lookahead.ts BUNDLE");

using model = await loadModel(bundle);
const tokenizer = await loadTokenizer(`${bundle}/tokenizer.model`);
const prompt = "In the beginning";

// Plain greedy decoding: one model call per token.
const greedy = generate(model, tokenizer, prompt, { temperature: 0, maxNewTokens: 48 });
const greedyIds: number[] = [];
for await (const { token } of greedy) if (token !== null) greedyIds.push(token);

// Lookahead: N-gram size 5, window 4, up to 4 verified guesses per call. Each call must fit the
// bundle's call length: (N - 1) * (W + G) = 32 tokens here.
const decoder = new LookaheadDecoder(model, { ngramSize: 5, windowSize: 4, verifications: 4 });
const ids: number[] = [];
const promptIds = tokenizer.encode(prompt, { bos: true });
for await (const id of decoder.generate(promptIds, { maxNewTokens: 48 })) ids.push(id);

console.log(tokenizer.decode([...promptIds, ...ids]));
console.log(`same tokens as greedy: ${ids.join() === greedyIds.join()}`);
console.log(
  `model calls: greedy ${greedy.stats.modelCalls}, lookahead ${decoder.stats.modelCalls}`,
);
