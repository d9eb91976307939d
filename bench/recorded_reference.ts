/**
 * A reference model that computes each call once: benchmarks score many bundles against the same
 * slow eager forward on the same tokens, so its logits are kept, keyed by the window and every
 * token the sequence has read, and given back when the same call comes again.
 *
 * @module
 */

import type { ModelConfig } from "../llama/config.ts";
import type { EagerSequence } from "../llama/forward.ts";
import type { ReferenceModel } from "../runtime/evaluate.ts";

/** Wraps a reference model; its memory grows by one logits row per distinct position scored. */
export class RecordedReference implements ReferenceModel {
  readonly #inner: ReferenceModel;
  readonly #recorded = new Map<string, Float32Array>();

  constructor(inner: ReferenceModel) {
    this.#inner = inner;
  }

  /** The wrapped model's shape. */
  get config(): ModelConfig {
    return this.#inner.config;
  }

  /** A sequence that replays recorded calls and runs the wrapped model for new ones. */
  begin(window: number): EagerSequence {
    const history: number[] = [];
    let live: EagerSequence | undefined;
    return {
      get position() {
        return history.length;
      },
      next: (tokens) => {
        const start = history.length;
        history.push(...tokens);
        const key = `${window}:${start}:${history.join(",")}`;
        let logits = this.#recorded.get(key);
        if (logits === undefined) {
          // A sequence that replayed so far catches up on what it skipped, then runs the call.
          if (live === undefined) {
            live = this.#inner.begin(window);
            if (start > 0) live.next(history.slice(0, start));
          }
          logits = live.next(tokens);
          this.#recorded.set(key, logits);
        } else if (live !== undefined) {
          live.next(tokens);
        }
        return logits;
      },
    };
  }
}
