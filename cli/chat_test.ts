/**
 * `llamane chat` under a pseudo-terminal (util-linux `script`), as a user types into it, and
 * `llamane run --chat`.
 */

import assert from "node:assert/strict";
import { exportChatBundle } from "../testing/chat_bundle.ts";
import { readBundledChatTemplate, readBundledTokenizer, readManifest } from "../bundle/mod.ts";
import { Chat } from "../runtime/chat.ts";
import { generate } from "../runtime/generate.ts";
import { loadModel } from "../runtime/load_model.ts";
import { encodeChat } from "../tokenizer/mod.ts";
import { llamane } from "./_testing.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const bundle = await exportChatBundle();
const SAMPLING = ["--temperature", "0", "--max_new_tokens", "6", "--backend", "cpu"];
const MESSAGES = ["Hello!", "Name three primes.", "Thanks — 🙂"];

/** The answers and per-turn prefill counts of the library, and each answer of a fresh run. */
async function libraryTurns() {
  const manifest = await readManifest(bundle);
  const tokenizer = readBundledTokenizer(bundle, manifest.tokenizer!);
  const template = readBundledChatTemplate(bundle, manifest.tokenizer!)!;
  using model = await loadModel(bundle, { backend: "cpu" });
  const chat = new Chat(model, tokenizer, template, { temperature: 0, maxNewTokens: 6 });
  const turns: { answer: string; prefill: number; fresh: string; whole: number }[] = [];
  for (const message of MESSAGES) {
    const { ids } = await encodeChat(tokenizer, template, {
      messages: [...chat.messages, { role: "user", content: message }],
      bosToken: "<|begin_of_text|>",
      eosToken: "<|eot_id|>",
    });
    let fresh = "";
    for await (
      const { text } of generate(model, tokenizer, ids, { temperature: 0, maxNewTokens: 6 })
    ) {
      fresh += text;
    }
    const generation = await chat.send(message);
    let answer = "";
    for await (const { text } of generation) answer += text;
    turns.push({ answer, prefill: generation.stats.promptTokens, fresh, whole: ids.length });
  }
  return turns;
}

Deno.test("llamane chat holds a conversation in a terminal, prefilling only each turn's new tokens", async () => {
  const command = [
    Deno.execPath(),
    "run",
    "--quiet",
    `--config=${CONFIG}`,
    "-A",
    MAIN,
    "chat",
    "-m",
    bundle,
    ...SAMPLING,
  ]
    .map((arg) => `'${arg}'`).join(" ");
  const child = new Deno.Command("script", {
    args: ["--quiet", "--flush", "--return", "--command", command, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(MESSAGES.join("\n") + "\n"));
  // Closing the input is Ctrl-D at the prompt: the session ends.
  await writer.close();
  const { code, stdout } = await child.output();
  const screen = new TextDecoder().decode(stdout).replaceAll("\r\n", "\n");
  assert.equal(code, 0, screen);

  const turns = [...screen.matchAll(/> ([\s\S]*?)\nprompt (\d+) tokens \|[^\n]*\n/g)];
  const expected = await libraryTurns();
  assert.equal(turns.length, MESSAGES.length, screen);
  turns.forEach((turn, i) => {
    assert.equal(turn[1], expected[i]!.answer, `answer ${i}`);
    assert.equal(turn[1], expected[i]!.fresh, `answer ${i} against a fresh run`);
    assert.equal(Number(turn[2]), expected[i]!.prefill, `prefill ${i}`);
  });
  // The cache carried the conversation: later turns prefilled less than all of it.
  assert.ok(expected.slice(1).every((turn) => turn.prefill < turn.whole));
});

Deno.test("llamane run --chat answers one user turn, the message from --prompt or stdin", async () => {
  const [first] = await libraryTurns();
  const result = await llamane(
    ["-A"],
    "run",
    "-m",
    bundle,
    "--chat",
    "--prompt",
    MESSAGES[0]!,
    ...SAMPLING,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, first!.answer + "\n");

  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      `--config=${CONFIG}`,
      "-A",
      MAIN,
      "run",
      "-m",
      bundle,
      "--chat",
      "--prompt",
      "-",
      ...SAMPLING,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(MESSAGES[0] + "\n"));
  await writer.close();
  const piped = await child.output();
  assert.equal(new TextDecoder().decode(piped.stdout), first!.answer + "\n");

  const refused = await llamane(["-A"], "run", "-m", bundle, "--chat", "--lookahead");
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /--lookahead does not apply to --chat/);
});
