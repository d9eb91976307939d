/**
 * Load on an OpenAI-compatible server, over loopback: concurrent clients each sending their
 * requests one after another, to both completion endpoints, streamed and whole, some cancelled
 * midway, each with a prompt of its own so that no two answers should be alike. Every request
 * ends in exactly one recorded outcome, also when the server never answers it.
 *
 * @module
 */

/** How much load: `clients` at once, each sending `requestsPerClient` in turn. */
export interface LoadPlan {
  readonly clients: number;
  readonly requestsPerClient: number;
  /** `max_tokens` of every request. */
  readonly maxTokens: number;
  /** The model's id on the server. */
  readonly model: string;
  /** Bounds the wait for any one request; a request that outlives it is recorded as lost. */
  readonly requestTimeoutMs?: number;
}

/** One request of the load. */
export interface LoadRequest {
  readonly client: number;
  readonly index: number;
  /** `/v1/chat/completions` or `/v1/completions`. */
  readonly path: string;
  readonly stream: boolean;
  /** Whether the client gives up midway: after the first text of a stream, or soon after sending. */
  readonly cancel: boolean;
  /** The JSON body, greedy. */
  readonly body: Readonly<Record<string, unknown>>;
}

/** How one request ended. */
export type LoadOutcome =
  | {
    readonly kind: "completed";
    readonly text: string;
    readonly completionTokens: number;
    /** From sending to the first text, for streamed requests. */
    readonly firstTextMs: number | undefined;
  }
  /** Refused with 429; `retryAfter` is the header's value. */
  | { readonly kind: "rate_limited"; readonly retryAfter: string | null }
  /** Given up by its client; `text` is what had arrived. */
  | { readonly kind: "cancelled"; readonly text: string }
  /** Any other status or a broken stream, with what the server said. */
  | { readonly kind: "failed"; readonly detail: string }
  /** No answer within the plan's timeout. */
  | { readonly kind: "lost" };

/** A request and its outcome. */
export interface LoadResult {
  readonly request: LoadRequest;
  readonly outcome: LoadOutcome;
}

/**
 * What each client's requests are, in turn: endpoint, streamed or whole, and whether the client
 * gives up midway. Chat is the rarer kind because rendering its template costs the server far
 * more than the tiny test model's answer does. A client with more requests starts over.
 */
const TURNS: readonly string[] = [
  "chat stream",
  "text whole",
  "text stream",
  "text whole cancel",
  "text stream",
  "text whole",
  "text stream cancel",
  "text whole",
  "text stream",
  "text whole",
  "chat whole",
  "text stream",
  "text whole",
  "text stream cancel",
  "text whole",
  "text stream",
  "chat stream cancel",
  "text stream",
  "text whole cancel",
  "text stream",
];

/** Every request of the plan, by client. */
export function planRequests(plan: LoadPlan): LoadRequest[][] {
  return Array.from(
    { length: plan.clients },
    (_, client) =>
      Array.from({ length: plan.requestsPerClient }, (_, index) => {
        const turn = TURNS[index % TURNS.length]!;
        const chat = turn.startsWith("chat");
        const stream = turn.includes("stream");
        // The distinct part last, where it weighs most on the answer.
        const story = `story ${client * plan.requestsPerClient + index}`;
        const body = chat
          ? { messages: [{ role: "user", content: `Please tell me ${story}` }] }
          : { prompt: `Here begins ${story}` };
        return {
          client,
          index,
          path: chat ? "/v1/chat/completions" : "/v1/completions",
          stream,
          cancel: turn.endsWith("cancel"),
          body: {
            model: plan.model,
            ...body,
            max_tokens: plan.maxTokens,
            temperature: 0,
            stream,
            ...(stream ? { stream_options: { include_usage: true } } : {}),
          },
        };
      }),
  );
}

/** The request sent whole and alone: what it must answer under load. */
export function alone(request: LoadRequest): LoadRequest {
  const { stream: _, stream_options: __, ...body } = request.body;
  return { ...request, stream: false, cancel: false, body: { ...body, stream: false } };
}

/** A chunk's text: a chat delta's content or a completion's text. */
function chunkText(chunk: { choices?: { delta?: { content?: string }; text?: string }[] }): string {
  const choice = chunk.choices?.[0];
  return choice?.delta?.content ?? choice?.text ?? "";
}

/** The data of each server-sent event of a body, until `[DONE]`. */
async function* eventData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const text of body.pipeThrough(new TextDecoderStream())) {
    const events = (pending + text).split("\n\n");
    pending = events.pop()!;
    for (const event of events) {
      const data = event.split("\n").filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6)).join("\n");
      if (data === "[DONE]") return;
      if (data !== "") yield data;
    }
  }
  throw new Error("The stream ended without [DONE]");
}

/** Sends one request to `base` and records how it ended. */
export async function sendRequest(
  base: string,
  request: LoadRequest,
  timeoutMs = 120_000,
): Promise<LoadOutcome> {
  const client = new AbortController();
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([client.signal, timeout]);
  let text = "";
  let cancelTimer: ReturnType<typeof setTimeout> | undefined;
  const sent = performance.now();
  try {
    // A whole answer has no midway to see: the client gives up soon after sending.
    if (request.cancel && !request.stream) cancelTimer = setTimeout(() => client.abort(), 5);
    const response = await fetch(`${base}${request.path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request.body),
      signal,
    });
    if (response.status === 429) {
      await response.body?.cancel();
      return { kind: "rate_limited", retryAfter: response.headers.get("retry-after") };
    }
    if (!response.ok) {
      return { kind: "failed", detail: `${response.status} ${await response.text()}` };
    }
    if (!request.stream) {
      const answer = await response.json();
      const choice = answer.choices[0];
      return {
        kind: "completed",
        text: choice.message?.content ?? choice.text,
        completionTokens: answer.usage.completion_tokens,
        firstTextMs: undefined,
      };
    }
    let firstTextMs: number | undefined;
    let completionTokens = 0;
    for await (const data of eventData(response.body!)) {
      const chunk = JSON.parse(data);
      if (chunk.error) return { kind: "failed", detail: JSON.stringify(chunk.error) };
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
      const delta = chunkText(chunk);
      if (delta === "") continue;
      firstTextMs ??= performance.now() - sent;
      text += delta;
      if (request.cancel) {
        client.abort();
        await response.body!.cancel().catch(() => {});
        return { kind: "cancelled", text };
      }
    }
    return { kind: "completed", text, completionTokens, firstTextMs };
  } catch (error) {
    if (timeout.aborted) return { kind: "lost" };
    if (client.signal.aborted) return { kind: "cancelled", text };
    return { kind: "failed", detail: String(error) };
  } finally {
    clearTimeout(cancelTimer);
  }
}

/** Runs the plan against `base`: every client at once, each request after the last. */
export async function runLoad(base: string, plan: LoadPlan): Promise<LoadResult[]> {
  const byClient = await Promise.all(
    planRequests(plan).map(async (requests) => {
      const results: LoadResult[] = [];
      for (const request of requests) {
        results.push({ request, outcome: await sendRequest(base, request, plan.requestTimeoutMs) });
      }
      return results;
    }),
  );
  return byClient.flat();
}
