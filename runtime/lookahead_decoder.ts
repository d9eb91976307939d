/**
 * `LookaheadDecoder`: greedy generation in fewer model calls, for scripts, on any backend.
 *
 * @module
 */

import { generateTokens } from "./generate.ts";
import { emptyGenerationStats, type GenerationStats } from "./generation_stats.ts";
import { lookaheadLayout, type LookaheadOptions } from "./lookahead.ts";
import type { LoadedModel } from "./model.ts";
import { ModelSession } from "./session.ts";

/** Options of {@link LookaheadDecoder.generate}. */
export interface LookaheadGenerateOptions {
  /** Most tokens to generate. @default 100 */
  readonly maxNewTokens?: number;
  /** Tokens that end generation (not yielded). @default [] */
  readonly stopTokens?: readonly number[];
}

/**
 * Decodes greedily with lookahead: the tokens are exactly greedy decoding's, several per model
 * call once the n-gram pool warms up. Works on single-method bundles (they return every logits
 * row).
 *
 * @example Count tokens per call on the demo bundle
 * ```ts ignore
 * import { LookaheadDecoder, loadModel, loadTokenizer } from "@llamane/llamane";
 * using model = await loadModel("out/kjv-tiny.llamane");
 * const tokenizer = await loadTokenizer("out/kjv-tiny.llamane/tokenizer.model");
 * const decoder = new LookaheadDecoder(model, { ngramSize: 5, windowSize: 4, verifications: 4 });
 * for await (const token of decoder.generate(tokenizer.encode("And God said", { bos: true }))) {
 *   console.log(tokenizer.decode([token]));
 * }
 * console.log(decoder.stats.generatedTokens / decoder.stats.lookahead!.decodeCalls);
 * ```
 */
export class LookaheadDecoder {
  /** The model it decodes with. */
  readonly model: LoadedModel;
  /** N, W and G. */
  readonly options: LookaheadOptions;
  /** Counters of the last {@link generate}, updated as it runs. */
  stats: GenerationStats = emptyGenerationStats();

  /**
   * Checks that the lookahead calls fit the bundle's input length.
   *
   * @throws {LookaheadError} when `(N-1)*(W+G)` exceeds the bundle's input length
   */
  constructor(model: LoadedModel, options: LookaheadOptions = {}) {
    lookaheadLayout(options, model.inputLength);
    this.model = model;
    this.options = options;
  }

  /** Streams the greedy continuation of `prompt` (token ids, BOS included if wanted). */
  generate(
    prompt: readonly number[],
    options: LookaheadGenerateOptions = {},
  ): AsyncGenerator<number> {
    this.stats = emptyGenerationStats();
    return generateTokens(new ModelSession(this.model), prompt, {
      temperature: 0,
      lookahead: this.options,
      maxNewTokens: options.maxNewTokens ?? 100,
      stopTokens: options.stopTokens ?? [],
    }, this.stats);
  }
}
