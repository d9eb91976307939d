/**
 * Export the King James model that ships with llamane, then generate from the bundle.
 *
 *   deno add jsr:@llamane/llamane
 *   deno run -A export_and_generate.ts [BUNDLE]
 *
 * BUNDLE is the directory to write (default kjv.llamane); the other examples read it.
 */

import { embeddedModel, exportModel, generate, loadModel, loadTokenizer } from "@llamane/llamane";

const bundle = Deno.args[0] ?? "kjv.llamane";

// The embedded model's files as local paths (downloaded to a temporary folder when llamane was
// imported from a URL; `await using` removes that folder at the end of the block).
{
  await using model = await embeddedModel();
  const summary = await exportModel({
    checkpoint: model.checkpoint,
    params: model.params,
    output: bundle,
    // Defaults: fp16 activations, int4 weights per channel, 32 tokens per call.
  });
  console.error(`exported ${summary.output} in ${summary.seconds.toFixed(1)} s`);
}

// Load it on the best backend here (Core ML on a Mac with the bridge, else the CPU backend) and
// stream a greedy continuation.
using loaded = await loadModel(bundle);
const tokenizer = await loadTokenizer(`${bundle}/tokenizer.model`);
const generation = generate(loaded, tokenizer, "And God said", {
  temperature: 0,
  maxNewTokens: 40,
});
// A stream writer writes each chunk whole, where one Deno.stdout.write may take only part of it.
const stdout = Deno.stdout.writable.getWriter();
const encoder = new TextEncoder();
await stdout.write(encoder.encode("And God said"));
for await (const { text } of generation) await stdout.write(encoder.encode(text));
stdout.releaseLock();
console.log();
console.error(`${generation.stats.generatedTokens} tokens in ${generation.stats.modelCalls} calls`);
