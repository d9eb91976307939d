/**
 * Chat with a real instruct model: SmolLM2-135M-Instruct (scripts/fixtures/smollm2/, made on
 * first run) exported in fp32 without quantization through the CLI with the tokenizer.json and chat template of
 * scripts/tokenizer/hf_oracle.py. Its greedy answer must be llama.cpp's on the F32 GGUF given the
 * same rendered prompt, and `llamane chat` in a terminal must answer each turn as a fresh run of
 * the whole conversation does while prefilling only the turn's new tokens. Through `llamane serve`
 * and the official `openai` client, the same answers come, and a second turn is prefilled only
 * where it extends the first.
 */

import assert from "node:assert/strict";
import { readBundledChatTemplate, readBundledTokenizer, readManifest } from "../bundle/mod.ts";
import { freshChatAnswers, llamane } from "../cli/_testing.ts";
import { oracleTokenizerDir } from "../testing/hf_oracle.ts";
import { scratchDir } from "../testing/scratch.ts";
import { chatInLibrary, chatInTerminal } from "../testing/terminal.ts";
import { encodeChat } from "../tokenizer/mod.ts";
import OpenAI from "openai";
import { bundleName, serveBundle } from "../serve/serve_bundle.ts";

const ROOT = new URL("../", import.meta.url);
const DIR = new URL("testdata/smollm2/", ROOT).pathname;
const PEER = new URL("bench/peer/", ROOT);
const NEW_TOKENS = 24;
const SAMPLING = ["--temperature", "0", "--max_new_tokens", String(NEW_TOKENS), "--backend", "cpu"];

const made = await new Deno.Command("bash", {
  args: [new URL("scripts/fixtures/smollm2/make.sh", ROOT).pathname],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!made.success) throw new Error("scripts/fixtures/smollm2/make.sh failed");

// An fp32 bundle of 620 MB.
const bundle = `${await scratchDir("llamane-smollm2-chat-")}/smollm2.llamane`;
const exported = await llamane(
  ["-A"],
  "export",
  "-c",
  `${DIR}/hf`,
  "-t",
  `${await oracleTokenizerDir("smollm2")}/tokenizer.json`,
  "--dtype",
  "fp32",
  // Unquantized: the same weights as llama.cpp's F32 GGUF.
  "--linear_quantize",
  "none",
  "--embedding_quantize",
  "none",
  "-o",
  bundle,
);
if (exported.code !== 0) throw new Error(`llamane export failed:\n${exported.stderr}`);

/** llama.cpp's greedy tokens after `ids` on the F32 GGUF (bench/peer/probe.mjs). */
async function llamaCppGreedy(ids: readonly number[], count: number): Promise<number[]> {
  const { success, stdout, stderr } = await new Deno.Command("node", {
    args: [
      "probe.mjs",
      "ids",
      "--model",
      `${DIR}/f32.gguf`,
      "--prompt-ids",
      JSON.stringify([ids]),
      "--new-tokens",
      String(count),
      "--threads",
      "1",
    ],
    cwd: PEER,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(`probe.mjs failed:\n${new TextDecoder().decode(stderr)}`);
  return JSON.parse(new TextDecoder().decode(stdout)).tokens[0];
}

Deno.test("SmolLM2's greedy answer through run --chat is llama.cpp's on the same prompt", async () => {
  const question = "What is the capital of France?";
  const result = await llamane(
    ["-A"],
    "run",
    "-m",
    bundle,
    "--chat",
    "--prompt",
    question,
    ...SAMPLING,
  );
  assert.equal(result.code, 0, result.stderr);

  const manifest = await readManifest(bundle);
  const tokenizer = readBundledTokenizer(bundle, manifest.tokenizer!);
  const template = readBundledChatTemplate(bundle, manifest.tokenizer!)!;
  const { ids } = await encodeChat(tokenizer, template, {
    messages: [{ role: "user", content: question }],
  });
  const theirs = await llamaCppGreedy(ids, NEW_TOKENS);
  const stop = theirs.findIndex((id) => manifest.tokenizer!.stopTokens.includes(id));
  const answer = tokenizer.decode(stop < 0 ? theirs : theirs.slice(0, stop));
  assert.equal(result.stdout, answer + "\n");
  assert.match(answer, /Paris/);
});

Deno.test("llamane chat with SmolLM2 in a terminal: three turns, each prefilling its new tokens", async () => {
  const messages = ["Hi! Who are you?", "What is 2+2?", "Thank you — merci 🙂"];
  const { code, screen, turns } = await chatInTerminal(["-m", bundle, ...SAMPLING], messages);
  assert.equal(code, 0, screen);
  const expected = await chatInLibrary(bundle, messages, NEW_TOKENS);
  assert.equal(turns.length, messages.length, screen);
  const answers = turns.map((turn) => turn.answer);
  const freshRuns = await freshChatAnswers(bundle, messages, answers, SAMPLING);
  turns.forEach((turn, i) => {
    assert.equal(turn.answer, expected[i]!.fresh, `answer ${i} against a fresh run`);
    assert.equal(turn.answer, freshRuns[i], `answer ${i} against run --chat --messages`);
    assert.equal(turn.prefill, expected[i]!.prefill, `prefill ${i}`);
  });
  assert.ok(expected.slice(1).every((turn) => turn.prefill < turn.whole));
});

Deno.test("SmolLM2 through llamane serve: run --chat's answer, then a turn reusing the first", async () => {
  const messages = ["What is the capital of France?", "And of Italy?"];
  const cli = await llamane(
    ["-A"],
    "run",
    "-m",
    bundle,
    "--chat",
    "--prompt",
    messages[0]!,
    ...SAMPLING,
  );
  assert.equal(cli.code, 0, cli.stderr);
  const expected = await chatInLibrary(bundle, messages, NEW_TOKENS);
  const server = await serveBundle(bundle, { port: 0, backend: { backend: "cpu" }, log: () => {} });
  try {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const sampling = { model: bundleName(bundle), temperature: 0, max_tokens: NEW_TOKENS };
    const first = await client.chat.completions.create({
      ...sampling,
      messages: [{ role: "user", content: messages[0]! }],
    });
    const answer = first.choices[0]!.message.content!;
    assert.equal(answer + "\n", cli.stdout);
    const second = await client.chat.completions.create({
      ...sampling,
      messages: [
        { role: "user", content: messages[0]! },
        { role: "assistant", content: answer },
        { role: "user", content: messages[1]! },
      ],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of second) {
      text += chunk.choices[0]?.delta.content ?? "";
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, expected[1]!.fresh);
    assert.equal(
      usage!.prompt_tokens - usage!.prompt_tokens_details!.cached_tokens!,
      expected[1]!.prefill,
    );
    assert.ok(usage!.prompt_tokens_details!.cached_tokens! >= first.usage!.prompt_tokens);
  } finally {
    await server.shutdown();
  }
});
