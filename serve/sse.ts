/**
 * Server-sent events as the OpenAI API streams them: one `data: <json>` event per chunk, then
 * `data: [DONE]`.
 *
 * @module
 */

const encoder = new TextEncoder();

/** The event carrying one JSON chunk. */
export function sseData(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

/** The event that ends a stream. */
export const SSE_DONE = "data: [DONE]\n\n";

/**
 * A streaming response of `events`, each sent as soon as the client takes the previous one. When
 * the client goes away, or `signal` aborts while the client is not taking events (a reader too
 * slow must not hold the stream open), the event generator is returned at once. `ended` runs
 * once the stream is over, whichever way, also when the generator never started; `clientLeft`
 * says the client went away first (the response's delivery may still count as complete).
 */
export function sseResponse(
  events: AsyncGenerator<string, void>,
  signal: AbortSignal,
  ended: (clientLeft: boolean) => void,
): Response {
  let producing = false;
  let over = false;
  const end = async (clientLeft: boolean) => {
    if (over) return;
    over = true;
    try {
      await events.return();
    } finally {
      ended(clientLeft);
    }
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      signal.addEventListener("abort", () => {
        if (producing) return;
        end(false).catch(() => {});
        try {
          controller.close();
        } catch {
          // Already closed: the stream had ended.
        }
      }, { once: true });
    },
    async pull(controller) {
      producing = true;
      let next;
      try {
        next = await events.next();
      } finally {
        producing = false;
      }
      if (next.done) {
        controller.close();
        await end(false);
      } else {
        controller.enqueue(encoder.encode(next.value));
      }
    },
    cancel: () => end(true),
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
    },
  });
}
