/**
 * Chat with a real instruct model: SmolLM2-135M-Instruct (scripts/fixtures/smollm2/, made on
 * first run) exported in fp32 without quantization through the CLI with the tokenizer.json and chat template of
 * scripts/tokenizer/hf_oracle.py. Its greedy answer must be llama.cpp's on the F32 GGUF given the
 * same rendered prompt, and `llamane chat` in a terminal must answer each turn as a fresh run of
 * the whole conversation does while prefilling only the turn's new tokens. Through `llamane serve`
 * and the official `openai` client, the same answers come, and a second turn is prefilled only
 * where it extends the first.
 *
 * The Q4_1 GGUF alone, exported the same way, bundles its own vocabulary: the `tokenizer.*`
 * metadata as Python's `gguf` reads it, ids as llama.cpp's on the tokenizer corpus, its eos as a
 * stop token, its template rendering as `transformers` renders it, and the same answer as the
 * tokenizer.json bundle. A truncated or corrupt bundled vocabulary is refused with a clear error.
 */

import assert from "node:assert/strict";
import { readBundledChatTemplate, readBundledTokenizer, readManifest } from "../bundle/mod.ts";
import { type CliResult, freshChatAnswers, llamane } from "../cli/_testing.ts";
import {
  oracleChat,
  oracleGgufMetadata,
  oracleTexts,
  oracleTokenizerDir,
} from "../testing/hf_oracle.ts";
import { assertEncodesLikeLlamaCpp } from "../testing/llama_cpp_peer.ts";
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

const scratch = await scratchDir("llamane-smollm2-chat-");
// Unquantized: the same weights as llama.cpp's F32 GGUF.
const UNQUANTIZED = [
  "--dtype",
  "fp32",
  "--linear_quantize",
  "none",
  "--embedding_quantize",
  "none",
];

// An fp32 bundle of 620 MB.
const bundle = `${scratch}/smollm2.llamane`;
const exported = await llamane(
  ["-A"],
  "export",
  "-c",
  `${DIR}/hf`,
  "-t",
  `${await oracleTokenizerDir("smollm2")}/tokenizer.json`,
  ...UNQUANTIZED,
  "-o",
  bundle,
);
if (exported.code !== 0) throw new Error(`llamane export failed:\n${exported.stderr}`);

const GGUF = `${DIR}/q4_1.gguf`;
let ggufExport: Promise<{ bundle: string; stdout: string }> | undefined;
/** The Q4_1 GGUF exported alone (no tokenizer beside it) as the bundle above was, made once. */
function ggufBundle(): Promise<{ bundle: string; stdout: string }> {
  ggufExport ??= (async () => {
    const output = `${scratch}/smollm2-gguf.llamane`;
    const result = await llamane(["-A"], "export", "-c", GGUF, ...UNQUANTIZED, "-o", output);
    if (result.code !== 0) throw new Error(`llamane export failed:\n${result.stderr}`);
    return { bundle: output, stdout: result.stdout };
  })();
  return ggufExport;
}

const cliChats = new Map<string, Promise<CliResult>>();
/** `llamane run --chat` of one question on a bundle, run once per bundle and question. */
function cliChat(model: string, question: string): Promise<CliResult> {
  const key = JSON.stringify([model, question]);
  if (!cliChats.has(key)) {
    cliChats.set(
      key,
      llamane(["-A"], "run", "-m", model, "--chat", "--prompt", question, ...SAMPLING),
    );
  }
  return cliChats.get(key)!;
}

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
  const result = await cliChat(bundle, question);
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
  const cli = await cliChat(bundle, messages[0]!);
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

Deno.test("SmolLM2's GGUF alone exports with its vocabulary, stop tokens and chat template", async () => {
  const { bundle: fromGguf, stdout } = await ggufBundle();
  assert.match(stdout, /tokenizer: the vocabulary of the GGUF checkpoint ".*q4_1.gguf"\n/);
  const original = await oracleGgufMetadata(GGUF);
  const bundled = await oracleGgufMetadata(`${fromGguf}/tokenizer.gguf`);
  assert.equal(bundled.tensor_count, 0);
  const vocabulary = Object.entries(original.metadata).filter(([key]) =>
    key.startsWith("tokenizer.")
  );
  assert.ok(vocabulary.length >= 10, `${vocabulary.length} tokenizer.* keys`);
  assert.deepEqual(bundled.metadata, Object.fromEntries(vocabulary));

  const value = (key: string) => original.metadata[key]?.value;
  const spec = (await readManifest(fromGguf)).tokenizer!;
  assert.deepEqual(
    { file: spec.file, kind: spec.kind, bosId: spec.bosId, eosId: spec.eosId, addBos: spec.addBos },
    {
      file: "tokenizer.gguf",
      kind: "gguf",
      bosId: value("tokenizer.ggml.bos_token_id"),
      eosId: value("tokenizer.ggml.eos_token_id"),
      addBos: value("tokenizer.ggml.add_bos_token"),
    },
  );
  for (const key of ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]) {
    if (value(key) !== undefined) assert.ok(spec.stopTokens.includes(value(key) as number), key);
  }

  const source = value("tokenizer.chat_template") as string;
  assert.equal(await Deno.readTextFile(`${fromGguf}/${spec.chatTemplate}`), source);
  const tokens = value("tokenizer.ggml.tokens") as string[];
  const [bos, eos] = [tokens[spec.bosId!]!, tokens[spec.eosId!]!];
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi — ça va? 🙂" },
    { role: "assistant", content: "Yes." },
    { role: "user", content: "And now?" },
  ];
  const [expected] = await oracleChat([
    { template: source, messages, add_generation_prompt: true, bos_token: bos, eos_token: eos },
  ]);
  const template = readBundledChatTemplate(fromGguf, spec)!;
  assert.equal(await template.render({ messages, bosToken: bos, eosToken: eos }), expected);
});

Deno.test("SmolLM2's bundled GGUF vocabulary encodes the corpus as llama.cpp does", async () => {
  const { bundle: fromGguf } = await ggufBundle();
  const tokenizer = readBundledTokenizer(fromGguf, (await readManifest(fromGguf)).tokenizer!);
  assert.equal(tokenizer.kind, "gguf");
  await assertEncodesLikeLlamaCpp(tokenizer, GGUF, await oracleTexts());
});

Deno.test("SmolLM2 from its GGUF alone answers through run --chat as with its tokenizer.json", async () => {
  const question = "What is the capital of France?";
  const { bundle: fromGguf } = await ggufBundle();
  const [ours, reference] = await Promise.all([
    cliChat(fromGguf, question),
    cliChat(bundle, question),
  ]);
  assert.equal(ours.code, 0, ours.stderr);
  assert.equal(reference.code, 0, reference.stderr);
  assert.equal(ours.stdout, reference.stdout);
  assert.match(ours.stdout, /Paris/);
});

Deno.test("a truncated or corrupt bundled tokenizer.gguf is refused with a clear error", async () => {
  const { bundle: fromGguf } = await ggufBundle();
  const vocabulary = await Deno.readFile(`${fromGguf}/tokenizer.gguf`);
  const lying = vocabulary.slice();
  // The length of the first key, which starts after magic, version and the two counts.
  new DataView(lying.buffer).setBigUint64(24, 2n ** 40n, true);
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "cut short",
      vocabulary.subarray(0, vocabulary.length >> 1),
      /"tokenizer.ggml.token_type" claims 49152 items but only \d+ bytes remain in the file$/m,
    ],
    ["cut in the counts", vocabulary.subarray(0, 12), /truncated file: tensor count at offset 8/],
    ["a lying key length", lying, /key of metadata entry 0 .* claims 1099511627776 bytes/],
    ["empty", new Uint8Array(), /the file is empty/],
  ];
  for (const [what, bytes, detail] of cases) {
    // Hard links: the copy shares the 620 MB of programs and replaces only the vocabulary.
    const copy = `${scratch}/corrupt.llamane`;
    await new Deno.Command("cp", { args: ["-rl", fromGguf, copy] }).output();
    await Deno.remove(`${copy}/tokenizer.gguf`);
    await Deno.writeFile(`${copy}/tokenizer.gguf`, bytes);
    const result = await llamane(
      ["-A"],
      "run",
      "-m",
      copy,
      "--chat",
      "--prompt",
      "Hi",
      ...SAMPLING,
    );
    await Deno.remove(copy, { recursive: true });
    assert.equal(result.code, 1, `${what}: ${result.stderr}`);
    assert.match(
      result.stderr,
      new RegExp(`^llamane run: Cannot load tokenizer "${copy}/tokenizer.gguf": `),
      what,
    );
    assert.match(result.stderr, detail, `${what}: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /\n\s+at /, `${what}: a stack trace`);
    assert.equal(result.stdout, "", what);
  }
});
