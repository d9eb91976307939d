/**
 * One generation at a time on the model: requests wait their turn in arrival order, at most
 * `maxWaiting` of them, and a request beyond that is refused at once with an estimate of when to
 * retry (the average time a request has held the model, times the requests ahead).
 *
 * @module
 */

import { ApiError } from "./api_error.ts";

/** The turn of one request on the model; disposing it hands the model to the next. */
export interface ModelLease extends Disposable {}

/** A FIFO of requests for the model, bounded in length. */
export class ModelQueue {
  readonly #maxWaiting: number;
  readonly #waiting: { grant: () => void }[] = [];
  #busy = false;
  /** Mean seconds a request held the model (exponentially weighted), for `Retry-After`. */
  #meanHoldSeconds = 1;

  /** A queue where at most `maxWaiting` requests wait behind the one running. */
  constructor(maxWaiting: number) {
    this.#maxWaiting = maxWaiting;
  }

  /** Requests waiting for the model. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Whether a request holds the model. */
  get busy(): boolean {
    return this.#busy;
  }

  /**
   * Waits for the model's turn.
   *
   * @throws {ApiError} 429 with `Retry-After` when the queue is full
   * @throws the signal's reason when it aborts while waiting (the request leaves the queue)
   */
  async acquire(signal: AbortSignal): Promise<ModelLease> {
    signal.throwIfAborted();
    if (this.#busy) {
      if (this.#waiting.length >= this.#maxWaiting) {
        const seconds = Math.max(1, Math.ceil(this.#meanHoldSeconds * (this.#waiting.length + 1)));
        throw new ApiError(
          429,
          `The model is busy and ${this.#waiting.length} requests are waiting: retry later`,
          {
            type: "requests",
            code: "rate_limit_exceeded",
            headers: { "retry-after": `${seconds}` },
          },
        );
      }
      await new Promise<void>((resolve, reject) => {
        const entry = {
          grant: () => {
            signal.removeEventListener("abort", leave);
            resolve();
          },
        };
        const leave = () => {
          this.#waiting.splice(this.#waiting.indexOf(entry), 1);
          reject(signal.reason);
        };
        signal.addEventListener("abort", leave, { once: true });
        this.#waiting.push(entry);
      });
    }
    this.#busy = true;
    const started = performance.now();
    let released = false;
    return {
      [Symbol.dispose]: () => {
        if (released) return;
        released = true;
        const held = (performance.now() - started) / 1000;
        this.#meanHoldSeconds = 0.8 * this.#meanHoldSeconds + 0.2 * held;
        const next = this.#waiting.shift();
        if (next === undefined) this.#busy = false;
        else next.grant();
      },
    };
  }
}
