/**
 * A reference model that computes each call once: benchmarks score many bundles against the same
 * slow eager forward on the same tokens, so its logits are kept, keyed by the window and every
 * token the sequence has read, and given back when the same call comes again. Kept in memory, or
 * in a directory of files named by the key's hash, so that later runs reuse them too.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { AttentionWindow } from "../llama/attention_window.ts";
import type { ModelConfig } from "../llama/config.ts";
import type { EagerSequence } from "../llama/forward.ts";
import type { ReferenceModel } from "../runtime/evaluate.ts";

/** Wraps a reference model; what it keeps grows by one logits row per distinct position scored. */
export class RecordedReference implements ReferenceModel {
  readonly #inner: ReferenceModel;
  readonly #recorded = new Map<string, Float32Array>();
  readonly #directory: string | undefined;

  /**
   * @param directory where to keep the logits, one file per call; it must be used for one
   *   reference checkpoint only (the key does not name it). @default memory
   */
  constructor(inner: ReferenceModel, directory?: string) {
    this.#inner = inner;
    this.#directory = directory;
    if (directory !== undefined) Deno.mkdirSync(directory, { recursive: true });
  }

  #file(key: string): string {
    return `${this.#directory}/${createHash("sha256").update(key).digest("hex")}.f32`;
  }

  #lookUp(key: string): Float32Array | undefined {
    if (this.#directory === undefined) return this.#recorded.get(key);
    try {
      const bytes = Deno.readFileSync(this.#file(key));
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  #record(key: string, logits: Float32Array): void {
    if (this.#directory === undefined) {
      this.#recorded.set(key, logits);
      return;
    }
    // Written beside its place and renamed in: a run killed mid-write leaves no partial file.
    const file = this.#file(key);
    Deno.writeFileSync(
      `${file}.partial`,
      new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength),
    );
    Deno.renameSync(`${file}.partial`, file);
  }

  /** The wrapped model's shape. */
  get config(): ModelConfig {
    return this.#inner.config;
  }

  /** A sequence that replays recorded calls and runs the wrapped model for new ones. */
  begin(window: AttentionWindow): EagerSequence {
    const history: number[] = [];
    let live: EagerSequence | undefined;
    return {
      get position() {
        return history.length;
      },
      next: (tokens) => {
        const start = history.length;
        history.push(...tokens);
        const { cacheLength, sinks, sinkReach } = window;
        const key = `${cacheLength}+${sinks}@${sinkReach}:${start}:${history.join(",")}`;
        let logits = this.#lookUp(key);
        if (logits === undefined) {
          // A sequence that replayed so far catches up on what it skipped, then runs the call.
          if (live === undefined) {
            live = this.#inner.begin(window);
            if (start > 0) live.next(history.slice(0, start));
          }
          logits = live.next(tokens);
          this.#record(key, logits);
        } else if (live !== undefined) {
          live.next(tokens);
        }
        return logits;
      },
    };
  }
}
