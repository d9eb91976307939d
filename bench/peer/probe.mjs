/**
 * The llama.cpp side of `deno task bench llama_cpp`, run by Node in a fresh process per
 * measurement: loads a GGUF with node-llama-cpp's prebuilt CPU binary (never a build, never a
 * download, never a GPU) and prints one JSON object on stdout. llama.cpp's own logs go to stderr.
 *
 *   node probe.mjs speed --model M.gguf --prompt-tokens 128 --decode-tokens 128 --threads 2
 *     times the binary and model load, the prefill of a prompt of exactly that many tokens
 *     (BOS + KJV text, repeated), and that many greedy single-token decode steps after it.
 *   node probe.mjs greedy --model M.gguf --prompt "And God said" --new-tokens 32 --threads 2
 *     greedy-decodes a continuation (stopping early at an end-of-generation token).
 *   node probe.mjs ids --model M.gguf --prompt-ids '[[1, 2], [3]]' --new-tokens 48 --threads 2
 *     greedy-decodes exactly that many tokens after each prompt, given as token ids (no BOS
 *     added, no stop at end-of-generation tokens), so that tokenization is not in question.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { loadavg } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";

// Resolved at run time, not imported statically: `deno check .` also walks this Node-only folder,
// and would fail on the bare name "node-llama-cpp", which is no Deno dependency. Node resolves it
// from this folder's node_modules, through the package's "exports".
const { getLlama, LlamaLogLevel } = await import(
  import.meta.resolve("node-llama-cpp")
);

// Genesis 1:1-5 (KJV, public domain): text the KJV model knows, so its prompt is in-distribution.
const PROMPT_TEXT = "In the beginning God created the heaven and the earth. And the earth was " +
  "without form, and void; and darkness was upon the face of the deep. And the Spirit of God " +
  "moved upon the face of the waters. And God said, Let there be light: and there was light. " +
  "And God saw the light, that it was good: and God divided the light from the darkness. And " +
  "God called the light Day, and the darkness he called Night. And the evening and the morning " +
  "were the first day. ";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: "string" },
    threads: { type: "string", default: "2" },
    "prompt-tokens": { type: "string", default: "128" },
    "decode-tokens": { type: "string", default: "128" },
    prompt: { type: "string", default: "And God said" },
    "new-tokens": { type: "string", default: "32" },
    "prompt-ids": { type: "string" },
  },
});
const mode = positionals[0];
if (!["speed", "greedy", "ids"].includes(mode) || values.model === undefined) {
  process.stderr.write(
    "usage: node probe.mjs speed|greedy|ids --model <file.gguf> [options]\n",
  );
  process.exit(2);
}
const threads = Number(values.threads);

// Other work on the machine's cores skews every figure: record how busy they were.
const loadAverage = loadavg()[0];
const started = performance.now();
const llama = await getLlama({
  gpu: false,
  // A missing or unloadable prebuilt binary must be an error, never a source build or download.
  build: "never",
  skipDownload: true,
  usePrebuiltBinaries: true,
  progressLogs: false,
  maxThreads: threads,
  logLevel: LlamaLogLevel.warn,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
});
const binaryLoaded = performance.now();
const model = await llama.loadModel({ modelPath: values.model, gpuLayers: 0 });
const modelLoaded = performance.now();

const build = {
  node_llama_cpp: JSON.parse(
    await readFile(
      new URL("node_modules/node-llama-cpp/package.json", import.meta.url),
      "utf8",
    ),
  ).version,
  llama_cpp_release: `${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}`,
  build_type: llama.buildType,
  gpu: llama.gpu,
  system_info: llama.systemInfo,
  load_average_1m: loadAverage,
};

/** The first `count` tokens of BOS + the KJV text repeated. */
function promptOfLength(count) {
  const text = model.tokenize(PROMPT_TEXT);
  const tokens = model.tokens.bos === null ? [] : [model.tokens.bos];
  while (tokens.length < count) tokens.push(...text);
  return tokens.slice(0, count);
}

/** Greedy tokens after `prompt`, with the time each arrived (ms since the call). */
async function generate(sequence, prompt, count, stopAtEog) {
  const tokens = [];
  const times = [];
  const start = performance.now();
  for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
    if (stopAtEog && model.isEogToken(token)) break;
    tokens.push(token);
    times.push(performance.now() - start);
    if (tokens.length === count) break;
  }
  return { tokens, times };
}

let result;
if (mode === "speed") {
  const promptTokens = Number(values["prompt-tokens"]);
  const decodeTokens = Number(values["decode-tokens"]);
  const prompt = promptOfLength(promptTokens);
  const contextStarted = performance.now();
  const context = await model.createContext({
    contextSize: promptTokens + decodeTokens,
    batchSize: promptTokens,
    threads,
    sequences: 1,
  });
  const contextCreated = performance.now();
  // The first token needs the prompt's forward; each further one is one single-token step.
  const { times } = await generate(
    context.getSequence(),
    prompt,
    decodeTokens + 1,
    false,
  );
  const prefillMs = times[0];
  const decodeMs = times[decodeTokens] - times[0];
  result = {
    mode,
    ...build,
    threads: context.currentThreads,
    context_size: context.contextSize,
    batch_size: context.batchSize,
    flash_attention: String(context.flashAttention),
    model_bytes: model.size,
    binary_load_ms: binaryLoaded - started,
    model_load_ms: modelLoaded - binaryLoaded,
    context_create_ms: contextCreated - contextStarted,
    prompt_tokens: prompt.length,
    prefill_ms: prefillMs,
    prefill_tok_s: prompt.length / (prefillMs / 1000),
    decode_tokens: decodeTokens,
    decode_ms: decodeMs,
    decode_tok_s: decodeTokens / (decodeMs / 1000),
  };
  await context.dispose();
} else if (mode === "ids") {
  const newTokens = Number(values["new-tokens"]);
  const prompts = JSON.parse(values["prompt-ids"]);
  const generated = [];
  for (const prompt of prompts) {
    const context = await model.createContext({
      contextSize: prompt.length + newTokens,
      threads,
    });
    generated.push((await generate(context.getSequence(), prompt, newTokens, false)).tokens);
    await context.dispose();
  }
  result = { mode, ...build, prompts, tokens: generated };
} else {
  const newTokens = Number(values["new-tokens"]);
  const prompt = model.tokenize(values.prompt);
  if (model.tokens.bos !== null) prompt.unshift(model.tokens.bos);
  const context = await model.createContext({
    contextSize: prompt.length + newTokens,
    threads,
  });
  const { tokens } = await generate(
    context.getSequence(),
    prompt,
    newTokens,
    true,
  );
  result = {
    mode,
    ...build,
    prompt: values.prompt,
    prompt_tokens: prompt,
    eos: model.tokens.eos,
    tokens,
    text: model.detokenize(tokens),
  };
  await context.dispose();
}
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(result) + "\n");
