/**
 * The chat page served at `/`: one self-contained HTML document (style and script inline, no
 * external assets, no build step) that holds a conversation in the browser and streams each
 * answer through `POST /v1/chat/completions`, showing time to first token and tokens per second.
 * It is a module rather than a file beside the code so that it travels with the code however
 * llamane is loaded: from a clone, a URL, JSR or a compiled binary.
 *
 * @module
 */

/** The page's HTML. Its script and style are inline; the page loads nothing else. */
export const CHAT_PAGE_HTML: string = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llamane</title>
<link rel="icon" href="data:,">
<style>
  :root { color-scheme: light dark; --accent: #2f6fde; --muted: #888; }
  * { box-sizing: border-box; }
  body { margin: 0; height: 100vh; display: flex; flex-direction: column;
    font: 15px/1.5 system-ui, sans-serif; }
  header, form, #log { width: 100%; max-width: 52rem; margin: 0 auto; padding: 0.6rem 1rem; }
  header { display: flex; gap: 0.8rem; align-items: baseline; flex-wrap: wrap; }
  h1 { font-size: 1.1rem; margin: 0; }
  #model { color: var(--muted); flex: 1; }
  details { width: 100%; }
  details label { display: block; margin: 0.3rem 0; }
  details textarea, details input { width: 100%; font: inherit; }
  #log { flex: 1; overflow-y: auto; }
  .message { white-space: pre-wrap; margin: 0.6rem 0; padding: 0.5rem 0.8rem; border-radius: 0.6rem; }
  .user { background: color-mix(in srgb, var(--accent) 15%, transparent); margin-left: 20%; }
  .assistant { background: color-mix(in srgb, var(--muted) 12%, transparent); margin-right: 10%; }
  .error { color: #d33; }
  .stats { color: var(--muted); font-size: 0.8rem; margin: -0.4rem 0 0.6rem; }
  form { display: flex; gap: 0.5rem; align-items: flex-end; }
  form textarea { flex: 1; font: inherit; padding: 0.5rem; resize: vertical; }
  button { font: inherit; padding: 0.45rem 0.9rem; }
</style>
</head>
<body>
<header>
  <h1>llamane</h1>
  <span id="model"></span>
  <button id="reset" type="button">Reset</button>
  <details>
    <summary>Settings</summary>
    <label>System message <textarea id="system" rows="2"></textarea></label>
    <label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
    <label>Most tokens per answer <input id="max-tokens" type="number" min="1" value="512"></label>
    <label>API key (when the server has one) <input id="api-key" type="password" autocomplete="off"></label>
  </details>
</header>
<main id="log" aria-live="polite"></main>
<form id="composer">
  <textarea id="message" rows="2" placeholder="Message (Enter sends, Shift+Enter starts a line)"></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" hidden>Stop</button>
</form>
<script type="module">
const $ = (id) => document.getElementById(id);
const log = $("log");
const input = $("message");
/** The turns so far, without the system message, which is read from its field at each send. */
let turns = [];
/** The answer being streamed, or null. */
let running = null;
let modelId = null;

function requestHeaders() {
  const headers = { "content-type": "application/json" };
  const key = $("api-key").value.trim();
  if (key !== "") headers.authorization = "Bearer " + key;
  return headers;
}

function append(className, text) {
  const element = document.createElement("div");
  element.className = className;
  element.textContent = text;
  log.append(element);
  log.scrollTop = log.scrollHeight;
  return element;
}

async function errorMessage(response) {
  const text = await response.text();
  try {
    return JSON.parse(text).error.message;
  } catch {
    return response.status + " " + response.statusText + (text === "" ? "" : ": " + text);
  }
}

async function model() {
  if (modelId !== null) return modelId;
  const response = await fetch("v1/models", { headers: requestHeaders() });
  if (!response.ok) throw new Error(await errorMessage(response));
  modelId = (await response.json()).data[0].id;
  $("model").textContent = modelId;
  return modelId;
}

/** The data of each server-sent event; lines may end in \r\n, \r or \n. */
async function* eventData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    // A \r that ends the chunk may be the first half of \r\n: keep it for the next chunk.
    const lines = (pending + value).split(/\r\n|\r(?!$)|\n/);
    pending = lines.pop();
    for (const line of lines) {
      if (line === "" && data.length > 0) {
        yield data.join("\n");
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
    }
  }
}

function numberField(id) {
  const value = $(id).valueAsNumber;
  return Number.isFinite(value) ? value : undefined;
}

function statsText(count, started, first, last, usage) {
  const parts = [count + (count === 1 ? " token" : " tokens")];
  if (first !== undefined) parts.push("first after " + ((first - started) / 1000).toFixed(2) + " s");
  if (count > 1 && last > first) {
    parts.push(((count - 1) / ((last - first) / 1000)).toFixed(1) + " tok/s");
  }
  if (usage) {
    const cached = usage.prompt_tokens_details?.cached_tokens;
    parts.push("prompt " + usage.prompt_tokens + (cached ? " (" + cached + " cached)" : ""));
  }
  return parts.join(" · ");
}

function setRunning(controller) {
  running = controller;
  $("send").hidden = controller !== null;
  $("stop").hidden = controller === null;
}

async function send(text) {
  const system = $("system").value.trim();
  const userTurn = { role: "user", content: text };
  turns.push(userTurn);
  const userElement = append("message user", text);
  const answer = append("message assistant", "");
  const stats = append("stats", "");
  const controller = new AbortController();
  setRunning(controller);
  const started = performance.now();
  let content = "";
  let count = 0;
  let first, last, usage;
  try {
    const messages = system === "" ? turns : [{ role: "system", content: system }, ...turns];
    const response = await fetch("v1/chat/completions", {
      method: "POST",
      headers: requestHeaders(),
      signal: controller.signal,
      body: JSON.stringify({
        model: await model(),
        messages,
        stream: true,
        stream_options: { include_usage: true },
        temperature: numberField("temperature"),
        max_tokens: numberField("max-tokens"),
      }),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const data of eventData(response.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices?.[0]?.delta?.content;
      if (!delta) continue;
      last = performance.now();
      first ??= last;
      count++;
      content += delta;
      answer.textContent = content;
      stats.textContent = statsText(count, started, first, last);
      log.scrollTop = log.scrollHeight;
    }
    stats.textContent = statsText(usage?.completion_tokens ?? count, started, first, last, usage);
  } catch (error) {
    if (error.name !== "AbortError") append("error", error.message);
  }
  setRunning(null);
  if (!turns.includes(userTurn)) return; // reset while streaming
  if (content !== "") {
    turns.push({ role: "assistant", content });
  } else {
    // Nothing came back: take the message out again so that it can be sent anew.
    turns.pop();
    userElement.remove();
    answer.remove();
    stats.remove();
    if (input.value === "") input.value = text;
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text === "" || running !== null) return;
  input.value = "";
  send(text);
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", () => running?.abort());
$("reset").addEventListener("click", () => {
  running?.abort();
  turns = [];
  log.replaceChildren();
  input.focus();
});
$("api-key").addEventListener("change", () => {
  modelId = null;
  model().catch(() => {});
});
model().catch((error) => append("error", error.message));
input.focus();
</script>
</body>
</html>
`;

/**
 * The page's response. Its content security policy lets the page reach nothing but its own
 * server, so no external asset can slip in unnoticed, and no other site may frame it.
 */
export function chatPageResponse(): Response {
  return new Response(CHAT_PAGE_HTML, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": "default-src 'none'; script-src 'unsafe-inline'; " +
        "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; frame-ancestors 'none'",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    },
  });
}
