/**
 * The chat page in a real headless Chromium (testing/chromium.ts) against the server on the tiny
 * chat bundle: typed messages stream their answers into the page, and each answer, greedy, is
 * the one the API gives whole for the same conversation; the page keeps the conversation across
 * turns, starts over on Reset, stops an answer midway, and loads nothing but its own server. On a
 * server with an API key, the page says it is refused until the key is typed into its settings.
 */

import assert from "node:assert/strict";
import { type BrowserPage, Chromium } from "../testing/chromium.ts";
import { exportChatBundle } from "../testing/chat_bundle.ts";
import { bundleName, serveBundle } from "./serve_bundle.ts";

const bundle = await exportChatBundle();
const NEW_TOKENS = 24;

/** The answer the API gives whole, greedy, to `messages`. */
async function apiAnswer(
  url: string,
  messages: { role: string; content: string }[],
  maxTokens = NEW_TOKENS,
): Promise<string> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: bundleName(bundle),
      messages,
      temperature: 0,
      max_tokens: maxTokens,
    }),
  });
  assert.equal(response.status, 200);
  return (await response.json()).choices[0].message.content;
}

/** Replaces a settings field's value by typing, as a user would. */
async function typeSetting(page: BrowserPage, id: string, value: string) {
  await page.evaluate(`document.querySelector("details").open = true`);
  await page.click(`#${id}`);
  await page.evaluate(`document.getElementById(${JSON.stringify(id)}).select()`);
  await page.type(value);
}

/** Types a message into the message box. */
async function typeMessage(page: BrowserPage, text: string) {
  await page.click("#message");
  await page.type(text);
}

/** Waits until `count` answers have ended with the server's usage line, or an error shows. */
async function answersEnded(page: BrowserPage, count: number): Promise<void> {
  await page.waitFor(`document.querySelector(".error") !== null ||
    [...document.querySelectorAll(".stats")].filter((s) => s.textContent.includes("prompt"))
      .length === ${count}`);
  const error = await page.evaluate<string | null>(
    `document.querySelector(".error")?.textContent ?? null`,
  );
  assert.equal(error, null, "the page shows an error");
}

/** The text of each answer on the page, and of each stats line. */
function answers(page: BrowserPage): Promise<string[]> {
  return page.evaluate(
    `[...document.querySelectorAll(".message.assistant")].map((e) => e.textContent)`,
  );
}

function statsLines(page: BrowserPage): Promise<string[]> {
  return page.evaluate(`[...document.querySelectorAll(".stats")].map((e) => e.textContent)`);
}

Deno.test("the chat page streams a conversation in Chromium, answering as the API does", async () => {
  const server = await serveBundle(bundle, {
    port: 0,
    backend: { backend: "cpu" },
    log: () => {},
  });
  try {
    await using browser = await Chromium.launch();
    using page = await browser.open(`${server.url}/`);
    assert.equal(
      await page.waitFor(`document.getElementById("model").textContent`),
      bundleName(bundle),
    );
    await typeSetting(page, "temperature", "0");
    await typeSetting(page, "max-tokens", String(NEW_TOKENS));

    // Every text the answer shows on its way, to see it stream in and only ever grow.
    await page.evaluate(`window.shown = [];
      new MutationObserver(() => {
        const answer = document.querySelector(".message.assistant");
        if (answer !== null && answer.textContent !== window.shown.at(-1)) {
          window.shown.push(answer.textContent);
        }
      }).observe(document.getElementById("log"), { childList: true, subtree: true, characterData: true })`);
    const first = "Hello there";
    await typeMessage(page, first);
    await page.pressEnter();
    await answersEnded(page, 1);
    const [answer] = await answers(page);
    assert.equal(answer, await apiAnswer(server.url, [{ role: "user", content: first }]));
    assert.notEqual(answer, "");
    const shown = await page.evaluate<string[]>("window.shown");
    assert.equal(shown.at(-1), answer);
    for (const text of shown) assert.ok(answer!.startsWith(text), `shown ${JSON.stringify(text)}`);
    const [stats] = await statsLines(page);
    assert.match(stats!, /^24 tokens · first after [\d.]+ s · [\d.]+ tok\/s · prompt \d+$/);

    // The answer came as server-sent events, from a request asking for them.
    const chats = page.requests.filter((r) => r.url === `${server.url}/v1/chat/completions`);
    assert.equal(chats.length, 1);
    assert.equal(JSON.parse(chats[0]!.body!).stream, true);
    assert.deepEqual(chats[0]!.response, { status: 200, mimeType: "text/event-stream" });

    // The second turn carries the first, and the server reuses its cached prompt.
    const second = "Tell me more";
    await typeMessage(page, second);
    await page.click("#send");
    await answersEnded(page, 2);
    const conversation = [
      { role: "user", content: first },
      { role: "assistant", content: answer! },
      { role: "user", content: second },
    ];
    assert.equal((await answers(page))[1], await apiAnswer(server.url, conversation));
    assert.match((await statsLines(page))[1]!, /prompt \d+ \([1-9]\d* cached\)$/);

    // Reset starts over: the first message answers as it did at first.
    await page.click("#reset");
    assert.deepEqual(await answers(page), []);
    await typeMessage(page, first);
    await page.pressEnter();
    await answersEnded(page, 1);
    assert.deepEqual(await answers(page), [answer]);

    // Stop ends a long answer midway, keeping what came.
    await page.click("#reset");
    await typeSetting(page, "max-tokens", "400");
    await typeMessage(page, first);
    await page.pressEnter();
    await page.waitFor(`document.querySelector(".message.assistant")?.textContent`);
    await page.click("#stop");
    await page.waitFor(`document.getElementById("stop").hidden`);
    const [partial] = await answers(page);
    const whole = await apiAnswer(server.url, [{ role: "user", content: first }], 400);
    assert.ok(whole.startsWith(partial!), "the stopped answer is not the start of the whole one");

    assert.deepEqual(page.errors, []);
    const elsewhere = page.requests.filter((r) => !r.url.startsWith(`${server.url}/`));
    assert.deepEqual(elsewhere, [], "the page loaded something from elsewhere");
  } finally {
    await server.shutdown();
  }
});

Deno.test("the chat page asks for the API key and then sends it with its requests", async () => {
  const server = await serveBundle(bundle, {
    port: 0,
    backend: { backend: "cpu" },
    apiKey: "page-key",
    log: () => {},
  });
  try {
    await using browser = await Chromium.launch();
    using page = await browser.open(`${server.url}/`);
    const refused = await page.waitFor<string>(`document.querySelector(".error")?.textContent`);
    assert.match(refused, /API key/i);
    await typeSetting(page, "api-key", "page-key");
    await page.pressEnter();
    assert.equal(
      await page.waitFor(`document.getElementById("model").textContent`),
      bundleName(bundle),
    );
    await page.evaluate(`document.querySelector(".error").remove()`);
    await typeSetting(page, "temperature", "0");
    await typeSetting(page, "max-tokens", String(NEW_TOKENS));
    await typeMessage(page, "Hello there");
    await page.pressEnter();
    await answersEnded(page, 1);
    assert.ok((await answers(page))[0] !== "");
    const chat = page.requests.find((r) => r.url.endsWith("/v1/chat/completions"));
    assert.equal(chat?.response?.status, 200);
  } finally {
    await server.shutdown();
  }
});
