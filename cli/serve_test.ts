/** `llamane serve` as users run it: started, asked over HTTP, stopped with SIGTERM. */

import assert from "node:assert/strict";
import { exportChatBundle } from "../testing/chat_bundle.ts";
import { llamane } from "./_testing.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const bundle = await exportChatBundle();

/** Reads `lines` into `seen` until one matches `pattern`; returns that line. */
async function lineMatching(
  lines: AsyncIterator<string>,
  seen: string[],
  pattern: RegExp,
): Promise<string> {
  while (true) {
    const { done, value } = await lines.next();
    if (done) throw new Error(`no line matched ${pattern}:\n${seen.join("\n")}`);
    seen.push(value);
    if (pattern.test(value)) return value;
  }
}

async function* splitLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
      yield pending.slice(0, end);
      pending = pending.slice(end + 1);
    }
  }
  if (pending !== "") yield pending;
}

Deno.test("llamane serve answers until SIGTERM, logging each request, then exits 0", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", `--config=${CONFIG}`, "-A", MAIN, "serve", "-m", bundle]
      .concat(["--port", "0", "--backend", "cpu", "--api_key", "sesame"]),
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = splitLines(child.stderr);
  const seen: string[] = [];
  const start = await lineMatching(lines, seen, /^serving /);
  const url = /at (http:\/\/127\.0\.0\.1:\d+)\/v1 /.exec(start)![1]!;
  assert.equal((await fetch(`${url}/health`)).status, 200);
  const answer = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: "Bearer sesame" },
    body: JSON.stringify({
      model: "chat.llamane",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 3,
    }),
  });
  assert.equal((await answer.json()).usage.completion_tokens, 3);
  await lineMatching(lines, seen, /^POST \/v1\/chat\/completions 200 \| .*generated 3 tokens/);

  child.kill("SIGTERM");
  await lineMatching(lines, seen, /^shutting down$/);
  for await (const line of lines) seen.push(line);
  assert.equal((await child.status).code, 0, seen.join("\n"));
  await assert.rejects(fetch(`${url}/health`));
});

Deno.test("llamane serve refuses bad flags before loading anything", async () => {
  const reuse = await llamane(["-A"], "serve", "-m", bundle, "--context_reuse", "maybe");
  assert.equal(reuse.code, 2);
  assert.match(reuse.stderr, /Invalid --context_reuse: expected on, off, got "maybe"/);
  const port = await llamane(["-A"], "serve", "-m", bundle, "--port", "70000");
  assert.equal(port.code, 2);
  assert.match(port.stderr, /Invalid --port/);
  const net = await llamane(["--allow-read"], "serve", "-m", bundle, "--port", "8089");
  assert.equal(net.code, 1);
  assert.match(net.stderr, /--allow-net=127\.0\.0\.1:8089/);
});
