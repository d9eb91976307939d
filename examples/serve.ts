/**
 * Serves a bundle over the OpenAI API and asks it as any OpenAI client would: the model's name
 * from `GET /v1/models`, then a completion streamed as server-sent events.
 *
 *   deno run -A serve.ts BUNDLE
 *
 * `llamane serve -m BUNDLE` runs the same server from the command line, until Ctrl-C.
 */

import { serveBundle } from "@llamane/llamane";

const bundle = Deno.args[0];
if (bundle === undefined) throw new Error("Usage: serve.ts BUNDLE");

// Port 0: any free port of 127.0.0.1. Each request logs one line to stderr.
const server = await serveBundle(bundle, { port: 0 });
try {
  const models = await (await fetch(`${server.url}/v1/models`)).json();
  const model = models.data[0].id;
  const prompt = "And God said";
  // A stream writer writes each chunk whole, where one Deno.stdout.write may take only part of it.
  const stdout = Deno.stdout.writable.getWriter();
  const encoder = new TextEncoder();
  await stdout.write(encoder.encode(prompt));
  const response = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model,
      prompt,
      max_tokens: 24,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  // Each event is a `data: <json>` line and a blank line; the last is `data: [DONE]`.
  let pending = "";
  for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const events = pending.split("\n\n");
    pending = events.pop()!;
    for (const event of events) {
      const data = event.replace(/^data: /, "");
      if (data === "[DONE]") continue;
      const { choices, usage } = JSON.parse(data);
      for (const choice of choices) await stdout.write(encoder.encode(choice.text));
      if (usage) {
        console.log(
          `\n(${usage.prompt_tokens} prompt tokens, ${usage.completion_tokens} generated)`,
        );
      }
    }
  }
} finally {
  await server.shutdown();
}
