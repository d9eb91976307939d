/**
 * llama.cpp's tokenizer as a test oracle: reads `{"model": PATH, "texts": [...]}` on stdin,
 * loads only the GGUF's vocabulary with node-llama-cpp's prebuilt CPU binary, and prints for
 * each text the ids with control tokens read as plain text (`parse_special` off) and with them
 * recognised (on), both without BOS or EOS.
 *
 * @module
 */

import process from "node:process";

// Resolved at run time, as in probe.mjs: `deno check .` also walks this Node-only folder.
const { getLlama, LlamaLogLevel } = await import(import.meta.resolve("node-llama-cpp"));

// Read as a stream: readFileSync(0) fails with EAGAIN on the non-blocking pipe Deno gives.
let input = "";
for await (const chunk of process.stdin.setEncoding("utf8")) input += chunk;
const { model: modelPath, texts } = JSON.parse(input);
const llama = await getLlama({
  gpu: false,
  build: "never",
  skipDownload: true,
  usePrebuiltBinaries: true,
  progressLogs: false,
  logLevel: LlamaLogLevel.error,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0, vocabOnly: true });
const results = texts.map((text) => ({
  plain: model.tokenize(text, false),
  special: model.tokenize(text, true),
}));
process.stdout.write(JSON.stringify(results));
await model.dispose();
await llama.dispose();
