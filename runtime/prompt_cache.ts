/**
 * A session that remembers which ids its KV cache holds, so that a prompt extending them (the
 * next turn of a conversation) prefills only the ids that follow. Where a prompt parts from the
 * cached ids, the cache is rewound to where they agree, or, once the sliding window has dropped
 * tokens, filled again from the start.
 *
 * @module
 */

import type { LoadedModel } from "./model.ts";
import { ModelSession } from "./session.ts";
import { generateTokens, type TokenGenerationOptions } from "./generate.ts";
import { emptyGenerationStats, type GenerationStats } from "./generation_stats.ts";

/** A model session that reuses the cached start of each prompt. */
export class PromptCache {
  readonly #session: ModelSession;
  /** The ids whose keys and values the cache holds, in order. */
  #cached: number[] = [];

  /** Starts with an empty cache. */
  constructor(model: LoadedModel) {
    this.#session = new ModelSession(model);
  }

  /** Tokens put through the model since the last reset (more than the cache once it slid). */
  get position(): number {
    return this.#session.cache.position;
  }

  /** Forgets every cached id. */
  reset(): void {
    this.#cached = [];
    this.#session.cache.reset();
  }

  /**
   * Generates after `prompt`, prefilling only the ids the cache does not already hold: the
   * stats' `promptTokens` counts those. When iteration ends, also early, the cache is known to
   * hold the prompt and every generated token fed back so far.
   */
  async *generate(
    prompt: readonly number[],
    options: TokenGenerationOptions,
    stats: GenerationStats = emptyGenerationStats(),
  ): AsyncGenerator<number> {
    // Reuse the cached ids the prompt starts with; at least one id must be fed.
    let reused = 0;
    while (reused < this.#cached.length && this.#cached[reused] === prompt[reused]) reused++;
    reused = Math.min(reused, prompt.length - 1);
    if (!this.#session.cache.rewind(reused)) {
      this.#session.cache.reset();
      reused = 0;
    }
    this.#cached = prompt.slice(0, reused);
    const generated: number[] = [];
    try {
      for await (
        const token of generateTokens(this.#session, prompt.slice(reused), options, stats)
      ) {
        generated.push(token);
        yield token;
      }
    } finally {
      // The cache holds what was committed: the prompt's chunks (all of them unless a call
      // failed), then each generated token once the next one was asked for.
      this.#cached = [...prompt, ...generated].slice(0, this.#session.cache.position);
    }
  }
}
