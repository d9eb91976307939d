/** `llamane chat` under a pseudo-terminal, as a user types into it, and `llamane run --chat`. */

import assert from "node:assert/strict";
import { exportChatBundle } from "../testing/chat_bundle.ts";
import { chatInLibrary, chatInTerminal, TerminalChat } from "../testing/terminal.ts";
import { freshChatAnswers, llamane } from "./_testing.ts";
import { readBundledChatTemplate, readBundledTokenizer, readManifest } from "../bundle/mod.ts";
import { Chat } from "../runtime/chat.ts";
import { generate } from "../runtime/generate.ts";
import { loadModel } from "../runtime/load_model.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const bundle = await exportChatBundle();
const SAMPLING = ["--temperature", "0", "-n", "6", "--backend", "cpu"];
const MESSAGES = ["Hello!", "Name three primes.", "Thanks — 🙂"];

Deno.test("llamane chat holds a conversation in a terminal, prefilling only each turn's new tokens", async () => {
  const { code, screen, turns } = await chatInTerminal(["-m", bundle, ...SAMPLING], MESSAGES);
  assert.equal(code, 0, screen);
  const expected = await chatInLibrary(bundle, MESSAGES, 6);
  assert.equal(turns.length, MESSAGES.length, screen);
  const answers = turns.map((turn) => turn.answer);
  const freshRuns = await freshChatAnswers(bundle, MESSAGES, answers, SAMPLING);
  turns.forEach((turn, i) => {
    assert.equal(turn.answer, expected[i]!.answer, `answer ${i}`);
    assert.equal(turn.answer, expected[i]!.fresh, `answer ${i} against a fresh run`);
    assert.equal(turn.answer, freshRuns[i], `answer ${i} against run --chat --messages`);
    assert.equal(turn.prefill, expected[i]!.prefill, `prefill ${i}`);
  });
  // The cache carried the conversation: later turns prefilled less than all of it.
  assert.ok(expected.slice(1).every((turn) => turn.prefill < turn.whole));
});

Deno.test("llamane run --chat answers one user turn, the message from --prompt or stdin", async () => {
  const [first] = await chatInLibrary(bundle, MESSAGES.slice(0, 1), 6);
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
    args: ["run", "--quiet", `--config=${CONFIG}`, "-A", MAIN, "run", "-m", bundle, "--chat"]
      .concat(["--prompt", "-", ...SAMPLING]),
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

Deno.test("the sampling flags reach the sampler: top_k 1 is greedy, repeat_penalty as the library", async () => {
  const run = async (...flags: string[]) => {
    const result = await llamane(
      ["-A"],
      "run",
      "-m",
      bundle,
      "--prompt",
      "Hi",
      "-n",
      "24",
      ...flags,
    );
    assert.equal(result.code, 0, result.stderr);
    return result.stdout;
  };
  const greedy = await run("--temperature", "0");
  assert.equal(await run("--top_k", "1", "--temperature", "2", "--seed", "3"), greedy);
  const manifest = await readManifest(bundle);
  const tokenizer = readBundledTokenizer(bundle, manifest.tokenizer!);
  using model = await loadModel(bundle, { backend: "cpu" });
  let text = "Hi";
  const options = { temperature: 0, maxNewTokens: 24, repeatPenalty: 50, repeatLastN: 16 };
  for await (const event of generate(model, tokenizer, "Hi", options)) text += event.text;
  const penalized = await run(
    "--temperature",
    "0",
    "--repeat_penalty",
    "50",
    "--repeat_last_n",
    "16",
  );
  assert.equal(penalized, text + "\n");
  assert.notEqual(penalized, greedy, "the penalty changes this model's greedy text");
});

Deno.test("llamane chat: /reset starts over and /system changes the system message", async () => {
  const { code, screen, turns } = await chatInTerminal(
    ["-m", bundle, ...SAMPLING],
    ["Hello!", "/reset", "/system Be brief.", "Hello!"],
  );
  assert.equal(code, 0, screen);
  assert.equal(turns.length, 2, screen);
  const [plain] = await chatInLibrary(bundle, ["Hello!"], 6);
  const [briefed] = await chatInLibrary(bundle, ["Hello!"], 6, "Be brief.");
  assert.deepEqual(turns[0], { answer: plain!.answer, prefill: plain!.whole });
  // After /reset the cache is empty again: the whole new conversation is prefilled.
  assert.deepEqual(turns[1], { answer: briefed!.answer, prefill: briefed!.whole });
});

Deno.test("llamane chat: Ctrl-C stops an answer and the conversation goes on", async () => {
  // Answers that would run for minutes unless stopped.
  const endless = ["--temperature", "0", "-n", "1000000", "--backend", "cpu"];
  const chat = new TerminalChat(["-m", bundle, ...endless]);
  const messages = ["Hello!", "Thanks"];
  const turns: { answer: string; prefill: number; generated: number }[] = [];
  for (const message of messages) {
    await chat.waitFor((screen) => screen.endsWith("\n> "));
    const start = chat.screen.length;
    await chat.type(`${message}\n`);
    await chat.waitFor((screen) => screen.length > start + 40);
    await chat.type("\x03");
    await chat.waitFor((screen) => /\nprompt \d+ tokens \|.*\n/.test(screen.slice(start)));
    const [, answer, prefill, generated] =
      /^([\s\S]*)\nprompt (\d+) tokens \|[^\n]*generated (\d+) tokens/
        .exec(chat.screen.slice(start))!;
    assert.ok(Number(generated) < 1_000_000, `the answer was stopped after ${generated} tokens`);
    turns.push({ answer: answer!, prefill: Number(prefill), generated: Number(generated) });
  }
  const { code, screen } = await chat.close();
  assert.equal(code, 0, screen);

  // The library's chat, each answer stopped after as many tokens, shows and prefills the same.
  const manifest = await readManifest(bundle);
  const tokenizer = readBundledTokenizer(bundle, manifest.tokenizer!);
  const template = readBundledChatTemplate(bundle, manifest.tokenizer!)!;
  using model = await loadModel(bundle, { backend: "cpu" });
  const library = new Chat(model, tokenizer, template, { temperature: 0, maxNewTokens: 1_000_000 });
  for (const [i, message] of messages.entries()) {
    const generation = await library.send(message);
    let answer = "";
    let drawn = 0;
    for await (const { text } of generation) {
      answer += text;
      if (++drawn === turns[i]!.generated) break;
    }
    assert.deepEqual(turns[i], {
      answer,
      prefill: generation.stats.promptTokens,
      generated: drawn,
    });
  }
});

Deno.test("llamane run --chat --messages refuses a conversation it cannot read, saying why", async () => {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  const refusal = async (content: string, ...flags: string[]) => {
    await Deno.writeTextFile(file, content);
    const run = await llamane(["-A"], "run", "-m", bundle, "--chat", "--messages", file, ...flags);
    assert.equal(run.code, 2, run.stderr);
    return run.stderr;
  };
  assert.match(await refusal("[{"), /Invalid --messages file .*JSON/);
  assert.match(await refusal("3"), /Invalid --messages file/);
  assert.match(await refusal('[{"role": "robot", "content": "hi"}]'), /messages\[0\]\.role/);
  assert.match(
    await refusal('[{"role": "user", "content": "hi"}]', "--system", "Be brief."),
    /--system does not apply to --messages/,
  );
  await Deno.remove(file);
});
