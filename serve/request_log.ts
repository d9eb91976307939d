/**
 * One log line per request, written once its response was delivered or the client left:
 * method, route, status, prompt tokens (and how many the cache held), generated tokens, time to
 * first token, decode speed and total time.
 *
 * @module
 */

import type { RunOutcome } from "./served_model.ts";

/** The log entry of one request, filled in as it is answered. */
export class RequestLog {
  readonly #method: string;
  readonly #route: string;
  readonly #startedAt: number;
  readonly #write: (line: string) => void;
  #ended = false;
  /** The response's status; 499 when the client left before the answer ended. */
  status = 0;
  /** The generation's counts, when one ran. */
  outcome: RunOutcome | undefined;
  /** Set when the answer is streamed: the stream sets the status as it goes. */
  streaming = false;

  /** Starts the entry of a request that arrived at `startedAt` (`performance.now()`). */
  constructor(method: string, route: string, startedAt: number, write: (line: string) => void) {
    this.#method = method;
    this.#route = route;
    this.#startedAt = startedAt;
    this.#write = write;
  }

  /** Writes the line, once. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#write(this.format());
  }

  /** The line as it is written. */
  format(): string {
    const seconds = (performance.now() - this.#startedAt) / 1000;
    const parts = [`${this.#method} ${this.#route} ${this.status}`];
    const outcome = this.outcome;
    if (outcome !== undefined) {
      const decoded = Math.max(outcome.completionTokens - 1, 0);
      parts.push(
        `prompt ${outcome.promptTokens} tokens (${outcome.cachedTokens} cached)`,
        `generated ${outcome.completionTokens} tokens (${outcome.finishReason})`,
        `ttft ${outcome.firstTokenSeconds?.toFixed(3) ?? "-"} s`,
        `${outcome.decodeSeconds > 0 ? (decoded / outcome.decodeSeconds).toFixed(1) : "-"} tok/s`,
      );
    }
    parts.push(`${seconds.toFixed(3)} s`);
    return parts.join(" | ");
  }
}
