/**
 * The server through the official `openai` client (and raw HTTP where a client would not send
 * such a request), on the tiny chat bundle: answers equal to `llamane run`'s, prompt reuse seen
 * in `usage`, errors in OpenAI's shape, and the server still answering after each.
 */

import assert from "node:assert/strict";
import OpenAI from "openai";
import { exportChatBundle } from "../testing/chat_bundle.ts";
import { llamane } from "../cli/_testing.ts";
import { bundleName, type BundleServerOptions, serveBundle } from "./serve_bundle.ts";
import { type RunningServer, type ServerOptions, startServer } from "./server.ts";
import { readBundledChatTemplate, readBundledTokenizer, readManifest } from "../bundle/mod.ts";
import { loadModel } from "../runtime/load_model.ts";
import type { LoadedModel } from "../runtime/model.ts";

const bundle = await exportChatBundle();
const MODEL = bundleName(bundle);
const CPU = ["--backend", "cpu"];

interface Served {
  readonly server: RunningServer;
  readonly client: OpenAI;
  /** The log lines written so far. */
  readonly lines: string[];
}

async function withServer(
  options: BundleServerOptions,
  body: (served: Served) => Promise<void>,
): Promise<void> {
  const lines: string[] = [];
  const server = await serveBundle(bundle, {
    port: 0,
    backend: { backend: "cpu" },
    log: (line) => lines.push(line),
    ...options,
  });
  const client = new OpenAI({
    baseURL: `${server.url}/v1`,
    apiKey: options.apiKey ?? "unused",
    maxRetries: 0,
  });
  try {
    await body({ server, client, lines });
  } finally {
    await server.shutdown();
  }
}

/** A gate the model's calls wait at while it is closed, so a test decides when tokens come. */
class CallGate {
  #opened = Promise.withResolvers<void>();
  #closed = true;

  /** Lets every waiting and later call through. */
  open(): void {
    this.#closed = false;
    this.#opened.resolve();
  }

  /** Waits while the gate is closed. */
  async pass(): Promise<void> {
    if (this.#closed) await this.#opened.promise;
  }

  /** `model` with each forward call waiting at the gate first. */
  gate(model: LoadedModel): LoadedModel {
    return new Proxy(model, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target);
        if (key === "forward") {
          return async (...args: Parameters<LoadedModel["forward"]>) => {
            await this.pass();
            return await target.forward(...args);
          };
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }
}

/** A server whose model waits at a closed gate: requests hold the model until it opens. */
async function withGatedServer(
  options: ServerOptions,
  body: (served: Served & { readonly gate: CallGate }) => Promise<void>,
): Promise<void> {
  const manifest = await readManifest(bundle);
  using model = await loadModel(bundle, { backend: "cpu" });
  const gate = new CallGate();
  const lines: string[] = [];
  const server = startServer({
    name: MODEL,
    model: gate.gate(model),
    tokenizer: readBundledTokenizer(bundle, manifest.tokenizer!),
    template: readBundledChatTemplate(bundle, manifest.tokenizer!),
  }, { port: 0, log: (line) => lines.push(line), ...options });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  try {
    await body({ server, client, lines, gate });
  } finally {
    gate.open();
    await server.shutdown();
  }
}

/** Waits until /health says the model is taken and `waiting` requests wait for it. */
async function holding(server: RunningServer, waiting: number): Promise<void> {
  while (true) {
    const health = await (await fetch(`${server.url}/health`)).json();
    if (health.busy && health.waiting === waiting) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Waits until a log line matches `pattern` (the line is written when a response ends). */
async function logLine(lines: readonly string[], pattern: RegExp): Promise<string> {
  while (true) {
    const line = lines.find((line) => pattern.test(line));
    if (line !== undefined) return line;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The text of `llamane run` with `args`, greedy, on the CPU. */
async function cliText(...args: string[]): Promise<string> {
  const result = await llamane(["-A"], "run", "-m", bundle, "--temperature", "0", ...CPU, ...args);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.replace(/\n$/, "");
}

async function apiError(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const error = await promise.then(() => undefined, (error) => error);
  assert.ok(error instanceof OpenAI.APIError, `expected an API error, got ${error}`);
  return error;
}

Deno.test("chat completions, whole and streamed, give llamane run --chat's greedy answer", async () => {
  const message = "Name three primes.";
  const expected = await cliText("--chat", "--prompt", message, "-n", "12");
  await withServer({}, async ({ client, lines }) => {
    const messages = [{ role: "user" as const, content: message }];
    const whole = await client.chat.completions.create({
      model: MODEL,
      messages,
      temperature: 0,
      max_tokens: 12,
    });
    assert.equal(whole.object, "chat.completion");
    assert.equal(whole.choices.length, 1);
    assert.equal(whole.choices[0]!.message.role, "assistant");
    assert.equal(whole.choices[0]!.message.content, expected);
    assert.equal(whole.usage!.completion_tokens, 12);
    assert.equal(whole.choices[0]!.finish_reason, "length");

    const stream = await client.chat.completions.create({
      model: MODEL,
      messages,
      temperature: 0,
      max_completion_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      for (const choice of chunk.choices) {
        text += choice.delta.content ?? "";
        finish = choice.finish_reason ?? finish;
      }
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, expected);
    assert.equal(finish, "length");
    assert.equal(usage!.completion_tokens, 12);
    assert.equal(usage!.prompt_tokens, whole.usage!.prompt_tokens);
    await logLine(lines, /^POST \/v1\/chat\/completions 200 \| prompt \d+ tokens .* generated 12/);
  });
});

Deno.test("a second turn prefills only what it adds to the first, as usage reports", async () => {
  const first = [{ role: "user" as const, content: "Hello!" }];
  const ask = (client: OpenAI, messages: OpenAI.ChatCompletionMessageParam[]) =>
    client.chat.completions.create({ model: MODEL, messages, temperature: 0, max_tokens: 8 });
  const turns = async (client: OpenAI) => {
    const one = await ask(client, first);
    const two = await ask(client, [
      ...first,
      { role: "assistant", content: one.choices[0]!.message.content },
      { role: "user", content: "Name three primes." },
    ]);
    return [one, two];
  };
  let reused: OpenAI.ChatCompletion[] = [];
  await withServer({}, async ({ client }) => {
    reused = await turns(client);
  });
  await withServer({ contextReuse: false }, async ({ client }) => {
    const fresh = await turns(client);
    for (const [i, turn] of fresh.entries()) {
      assert.equal(turn.usage!.prompt_tokens_details!.cached_tokens, 0);
      assert.equal(turn.choices[0]!.message.content, reused[i]!.choices[0]!.message.content);
      assert.equal(turn.usage!.prompt_tokens, reused[i]!.usage!.prompt_tokens);
    }
  });
  const [one, two] = reused.map((turn) => turn.usage!);
  assert.equal(one!.prompt_tokens_details!.cached_tokens, 0);
  // The whole first prompt was reused, and only the rest of the second was prefilled.
  const cached = two!.prompt_tokens_details!.cached_tokens!;
  assert.ok(cached >= one!.prompt_tokens, `${cached} cached of ${two!.prompt_tokens}`);
  assert.ok(cached < two!.prompt_tokens);
});

Deno.test("completions continue text as llamane run does; stop strings cut across tokens", async () => {
  const prompt = "And God said";
  const expected = (await cliText("--prompt", prompt, "-n", "16")).slice(prompt.length);
  await withServer({}, async ({ client }) => {
    const whole = await client.completions.create({
      model: MODEL,
      prompt,
      temperature: 0,
      max_tokens: 16,
      logprobs: 2,
    });
    assert.equal(whole.object, "text_completion");
    assert.equal(whole.choices[0]!.text, expected);
    assert.equal(whole.choices[0]!.finish_reason, "length");
    const tokens = whole.choices[0]!.logprobs!.tokens!;
    assert.equal(tokens.length, 16);
    // Greedy: each token is its row's most likely one.
    whole.choices[0]!.logprobs!.top_logprobs!.forEach((top, i) => {
      const [best] = Object.entries(top).sort((a, b) => b[1] - a[1]);
      assert.equal(best![1], whole.choices[0]!.logprobs!.token_logprobs![i]);
      assert.ok(best![1] <= 0);
    });

    // A stop string made of the end of one token and the start of the next.
    const boundary = tokens.slice(0, 4).join("").length;
    const stop = expected.slice(boundary - 1, boundary + 1);
    const cut = expected.slice(0, expected.indexOf(stop));
    const stream = await client.completions.create({
      model: MODEL,
      prompt: [prompt],
      temperature: 0,
      max_tokens: 16,
      stop: ["never in this text", stop],
      stream: true,
    });
    let text = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, cut);
    assert.equal(finish, "stop");
  });
});

Deno.test("the model list names the bundle; /health answers without the API key", async () => {
  await withServer({ apiKey: "sesame" }, async ({ server, client }) => {
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    assert.deepEqual(models.map((model) => [model.id, model.object]), [[MODEL, "model"]]);
    const health = await fetch(`${server.url}/health`);
    assert.deepEqual(await health.json(), { status: "ok", busy: false, waiting: 0 });

    const anonymous = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "wrong", maxRetries: 0 });
    const wrong = await apiError(anonymous.models.list());
    assert.equal(wrong.status, 401);
    assert.equal(wrong.code, "invalid_api_key");
    const missing = await fetch(`${server.url}/v1/models`);
    assert.equal(missing.status, 401);
    assert.match((await missing.json()).error.message, /Missing API key/);
  });
});

Deno.test("invalid requests get OpenAI-shaped 4xx errors naming the field", async () => {
  await withServer({}, async ({ client, server }) => {
    const messages = [{ role: "user" as const, content: "Hi" }];
    const cases: [Record<string, unknown>, number, string | null, RegExp][] = [
      [
        { temperature: "hot" },
        400,
        "temperature",
        /expected a number in \[0, 2\], got the string "hot"/,
      ],
      [{ max_tokens: -5 }, 400, "max_tokens", /whole number in \[1, /],
      [{ max_tokens: 1e9 }, 400, "max_tokens", /context is 504 tokens/],
      [{ max_tokens: 2.5 }, 400, "max_tokens", /got 2.5/],
      [{ n: 2 }, 400, "n", /only one choice/],
      [{ stop: [1] }, 400, "stop", /string or an array of strings/],
      [{ stream_options: { include_usage: true } }, 400, "stream_options", /only allowed with/],
      [{ model: "gpt-4o" }, 404, "model", /'gpt-4o' does not exist/],
      [{ messages: [] }, 400, "messages", /non-empty array/],
      [{ messages: [{ role: "robot", content: "x" }] }, 400, "messages[0].role", /robot/],
    ];
    for (const [fields, status, param, message] of cases) {
      const error = await apiError(
        client.chat.completions.create({
          model: MODEL,
          messages,
          ...fields,
        } as OpenAI.ChatCompletionCreateParamsNonStreaming),
      );
      assert.equal(error.status, status, JSON.stringify(fields));
      assert.equal(error.param, param, JSON.stringify(fields));
      assert.match(error.message, message);
      assert.equal(error.type, "invalid_request_error");
    }
    const completion = (prompt: number[]) =>
      apiError(client.completions.create({ model: MODEL, prompt }));
    const full = await completion(new Array(504).fill(100));
    assert.equal(full.status, 400);
    assert.equal(full.param, "prompt");
    assert.equal(full.code, "context_length_exceeded");
    assert.match(full.message, /context is 504 tokens, but 505 were requested \(504 in the prompt/);
    const unknownId = await completion([1, 3011]);
    assert.equal(unknownId.param, "prompt");
    assert.match(unknownId.message, /token 3011 is not an id below 3011/);
    // Unknown fields are ignored, as the OpenAI API does.
    const answer = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 2,
      made_up_field: { anything: true },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    assert.equal(answer.usage!.completion_tokens, 2);

    const post = (body: BodyInit, path = "/v1/chat/completions") =>
      fetch(`${server.url}${path}`, { method: "POST", body });
    const malformed = await post('{"model": ');
    assert.equal(malformed.status, 400);
    assert.deepEqual(await malformed.json(), {
      error: {
        message: "The request body is not valid JSON",
        type: "invalid_request_error",
        param: null,
        code: "invalid_json",
      },
    });
    const huge = await post(JSON.stringify({ model: MODEL, prompt: "x".repeat(2 << 20) }));
    assert.equal(huge.status, 413);
    assert.match((await huge.json()).error.message, /limit is 1048576 bytes/);
    const array = await post("[]", "/v1/completions");
    assert.equal(array.status, 400);
    await array.body?.cancel();
    const route = await post("{}", "/v1/embeddings");
    assert.equal(route.status, 404);
    await route.body?.cancel();
    const method = await fetch(`${server.url}/v1/chat/completions`);
    assert.equal(method.status, 405);
    assert.equal(method.headers.get("allow"), "POST");
    await method.body?.cancel();

    // Still serving.
    const after = await client.completions.create({ model: MODEL, prompt: "Hi", max_tokens: 1 });
    assert.equal(after.usage!.completion_tokens, 1);
  });
});

Deno.test("one generation at a time: 429 beyond the queue, and a client that leaves frees the model", async () => {
  await withGatedServer({ maxQueue: 0 }, async ({ server, client, lines, gate }) => {
    const leaving = new AbortController();
    await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: MODEL, prompt: "Hi", max_tokens: 400, stream: true }),
      signal: leaving.signal,
    });
    await holding(server, 0);
    const busy = await apiError(client.completions.create({ model: MODEL, prompt: "Hi" }));
    assert.equal(busy.status, 429);
    assert.equal(busy.code, "rate_limit_exceeded");
    assert.match(busy.headers?.get("retry-after") ?? "", /^[1-9]\d*$/);

    // The client leaves while its prompt is being prefilled: the first token is the last.
    leaving.abort();
    gate.open();
    const line = await logLine(lines, /^POST \/v1\/completions 499 /);
    const generated = Number(/generated (\d+) tokens \(cancelled\)/.exec(line)![1]);
    assert.ok(generated < 400, line);
    const after = await client.completions.create({ model: MODEL, prompt: "Hi", max_tokens: 2 });
    assert.equal(after.usage!.completion_tokens, 2);
  });
});

const encoder = new TextEncoder();

/** What the server sends on `conn` until it closes it or `expected` appears. */
async function reply(conn: Deno.Conn, expected: RegExp): Promise<string> {
  let text = "";
  const buffer = new Uint8Array(4096);
  while (!expected.test(text)) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return text;
}

Deno.test("slow clients: a trickled body gets 408, stalled headers hold only their connection", async () => {
  await withServer({ bodyTimeoutSeconds: 1 }, async ({ server, client }) => {
    const address = { hostname: server.hostname, port: server.port };
    using trickle = await Deno.connect(address);
    await trickle.write(encoder.encode(
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model":',
    ));
    using stalled = await Deno.connect(address);
    await stalled.write(encoder.encode("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"));

    const answer = await client.completions.create({ model: MODEL, prompt: "Hi", max_tokens: 1 });
    assert.equal(answer.usage!.completion_tokens, 1);
    const timedOut = await reply(trickle, /request_timeout/);
    assert.match(timedOut, /^HTTP\/1\.1 408 /);
    assert.match(timedOut, /Request body not received within 1 s/);
    const again = await client.completions.create({ model: MODEL, prompt: "Hi", max_tokens: 1 });
    assert.equal(again.usage!.completion_tokens, 1);
  });
});

Deno.test("shutdown answers waiting requests with 503, ends the running stream, then refuses", async () => {
  await withGatedServer({}, async ({ server, lines, gate }) => {
    const post = (body: object) =>
      fetch(`${server.url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({ model: MODEL, prompt: "Hi", max_tokens: 400, ...body }),
      });
    const running = await post({ stream: true });
    const waiting = post({});
    await holding(server, 1);

    const stopped = server.shutdown();
    const refused = await waiting;
    assert.equal(refused.status, 503);
    assert.equal((await refused.json()).error.code, "server_shutting_down");
    gate.open();
    const streamed = await running.text();
    assert.match(streamed, /"code":"server_shutting_down"/);
    assert.doesNotMatch(streamed, /\[DONE\]/);
    await stopped;
    await assert.rejects(fetch(`${server.url}/health`));
    assert.ok(lines.some((line) => /^POST \/v1\/completions 503 \| .*\(cancelled\)/.test(line)));
  });
});

Deno.test("a request past its time gets 503 and frees the model; a client that leaves a whole answer cancels it", async () => {
  const post = (server: RunningServer, signal?: AbortSignal) =>
    fetch(`${server.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: MODEL, prompt: "Hi", max_tokens: 400 }),
      ...(signal === undefined ? {} : { signal }),
    });
  await withGatedServer({ requestTimeoutSeconds: 0.2 }, async ({ server, gate }) => {
    const first = post(server);
    await holding(server, 0);
    // Waiting behind a request that cannot move, the second runs out of time in the queue.
    const late = await post(server);
    assert.equal(late.status, 503);
    assert.equal((await late.json()).error.code, "timeout");
    gate.open();
    assert.equal((await first).status, 503);
    await (await first).body?.cancel();
    assert.deepEqual(await (await fetch(`${server.url}/health`)).json(), {
      status: "ok",
      busy: false,
      waiting: 0,
    });
  });
  await withGatedServer({}, async ({ server, client, lines, gate }) => {
    const leaving = new AbortController();
    const answer = post(server, leaving.signal).catch((error) => error);
    await holding(server, 0);
    leaving.abort();
    assert.ok(await answer instanceof Error);
    gate.open();
    await logLine(lines, /^POST \/v1\/completions 499 \| .* \(cancelled\)/);
    const after = await client.completions.create({ model: MODEL, prompt: "Hi", max_tokens: 1 });
    assert.equal(after.usage!.completion_tokens, 1);
  });
});
