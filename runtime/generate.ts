/**
 * Generation in two layers. {@link generateTokens} runs the model: the prompt in chunks of L
 * (prefill), then one token per call (decode), sampling each next token and stopping at a stop
 * token or the token budget. {@link generate} adds text (UTF-8-safe streaming) and statistics.
 *
 * @module
 */

import { ropeFrequencies } from "../llama/rope.ts";
import type { Tokenizer } from "../tokenizer/mod.ts";
import { buildCallInputs } from "./call_inputs.ts";
import { KvCache } from "./kv_cache.ts";
import type { LoadedModel } from "./model.ts";
import { type RandomSource, sampleToken, type SamplingOptions, seededRandom } from "./sampler.ts";

/** Options of a generation. */
export interface GenerateOptions {
  /** Most tokens to generate. @default 100 */
  readonly maxNewTokens?: number;
  /** 0 is greedy. @default 0.6 */
  readonly temperature?: number;
  /** Nucleus mass. @default 0.9 */
  readonly topP?: number;
  /** Seed of the sampler's random source. @default a random seed */
  readonly seed?: number;
  /** Tokens that end generation (not emitted). @default the tokenizer's or the bundle's */
  readonly stopTokens?: readonly number[];
}

/** Counters of one generation, updated as it runs. */
export interface GenerationStats {
  promptTokens: number;
  prefillSeconds: number;
  generatedTokens: number;
  decodeSeconds: number;
  /** Forward calls made, prefill included. */
  modelCalls: number;
  /** Why generation ended: a stop token, or the token budget. */
  finishReason: "stop" | "length" | undefined;
}

function newStats(): GenerationStats {
  return {
    promptTokens: 0,
    prefillSeconds: 0,
    generatedTokens: 0,
    decodeSeconds: 0,
    modelCalls: 0,
    finishReason: undefined,
  };
}

/** Runs forward calls on a model and keeps its cache: the state of one conversation. */
export class ModelSession {
  readonly model: LoadedModel;
  readonly cache: KvCache;
  readonly #freqs: Float64Array;

  constructor(model: LoadedModel) {
    this.model = model;
    const { model: config, export: exported } = model.manifest;
    this.cache = new KvCache({
      layers: config.nLayers,
      kvHeads: config.nKvHeads,
      cacheLength: exported.cacheLen,
      headDim: config.headDim,
      dtype: exported.dtype,
    });
    this.#freqs = ropeFrequencies(config);
  }

  /** RoPE frequencies of the model. */
  get freqs(): Float64Array {
    return this.#freqs;
  }

  /**
   * Feeds `tokens` (at most L) in one call, commits them to the cache, and returns the call's
   * logits: `[callLength, V]`, or `[1, V]` for a bundle that returns only the last row.
   */
  async call(tokens: readonly number[]): Promise<Float16Array | Float32Array> {
    const callLength = this.model.callLengthFor(tokens.length);
    const inputs = buildCallInputs(this.cache, this.#freqs, { tokens, callLength });
    const result = await this.model.forward(callLength, inputs, this.cache);
    this.cache.commit(result.newKeys, result.newValues, callLength, tokens.map((_, i) => i));
    return result.logits;
  }

  /** Like {@link call}, returning only the logits row of the last token. */
  async step(tokens: readonly number[]): Promise<Float16Array | Float32Array> {
    const logits = await this.call(tokens);
    const vocab = this.model.manifest.model.vocabSize;
    const row = logits.length === vocab ? 0 : tokens.length - 1;
    return logits.subarray(row * vocab, (row + 1) * vocab);
  }
}

/**
 * Generates token ids after `prompt` (ids, BOS included if wanted). Yields each new token; the
 * stop token that ends generation is not yielded.
 *
 * @param stats updated in place as generation runs
 */
export async function* generateTokens(
  session: ModelSession,
  prompt: readonly number[],
  options: GenerateOptions & { readonly stopTokens: readonly number[] },
  stats: GenerationStats = newStats(),
): AsyncGenerator<number> {
  if (prompt.length === 0) throw new RangeError("Cannot generate: the prompt has no tokens");
  const sampling: SamplingOptions = {
    temperature: options.temperature ?? 0.6,
    topP: options.topP ?? 0.9,
  };
  const random: RandomSource = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  const maxNewTokens = options.maxNewTokens ?? 100;
  const stops = new Set(options.stopTokens);
  const length = session.model.inputLength;

  // Prefill: the prompt in chunks of L; a prompt longer than the cache evicts its oldest tokens.
  let started = performance.now();
  let logits: Float16Array | Float32Array | undefined;
  for (let i = 0; i < prompt.length; i += length) {
    logits = await session.step(prompt.slice(i, i + length));
    stats.modelCalls++;
  }
  stats.promptTokens += prompt.length;
  stats.prefillSeconds += (performance.now() - started) / 1000;

  started = performance.now();
  for (let generated = 0; generated < maxNewTokens; generated++) {
    const token = sampleToken(logits!, sampling, random);
    if (stops.has(token)) {
      stats.finishReason = "stop";
      return;
    }
    stats.generatedTokens++;
    yield token;
    if (generated + 1 === maxNewTokens) break;
    logits = await session.step([token]);
    stats.modelCalls++;
    stats.decodeSeconds = (performance.now() - started) / 1000;
  }
  stats.decodeSeconds = (performance.now() - started) / 1000;
  stats.finishReason = "length";
}

/**
 * One generated token and the text it completes (empty while a character is split across
 * tokens). A generation that ends mid-character yields a last event with `token: null` carrying
 * the decoder's remainder.
 */
export interface TokenEvent {
  readonly token: number | null;
  readonly text: string;
}

/** A running generation: iterate it for tokens and text; `stats` fills in as it goes. */
export class Generation implements AsyncIterable<TokenEvent> {
  /** Live counters; final once iteration ends. */
  readonly stats: GenerationStats = newStats();
  readonly #tokens: () => AsyncGenerator<number>;
  readonly #tokenizer: Tokenizer;

  constructor(tokens: (stats: GenerationStats) => AsyncGenerator<number>, tokenizer: Tokenizer) {
    this.#tokens = () => tokens(this.stats);
    this.#tokenizer = tokenizer;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TokenEvent> {
    const decoder = this.#tokenizer.decoder();
    for await (const token of this.#tokens()) yield { token, text: decoder.push(token) };
    const rest = decoder.flush();
    if (rest !== "") yield { token: null, text: rest };
  }
}

/**
 * Generates text after `prompt` with a fresh cache.
 *
 * @example Greedy continuation with the embedded model (after `deno task demo` made the bundle)
 * ```ts ignore
 * import { generate, loadModel, loadTokenizer } from "../mod.ts";
 * using model = await loadModel("kjv.llamane");
 * const tokenizer = await loadTokenizer("kjv.llamane/tokenizer.model");
 * for await (const { text } of generate(model, tokenizer, "And God said", { temperature: 0 })) {
 *   await Deno.stdout.write(new TextEncoder().encode(text));
 * }
 * ```
 */
export function generate(
  model: LoadedModel,
  tokenizer: Tokenizer,
  prompt: string,
  options: GenerateOptions = {},
): Generation {
  const ids = tokenizer.encode(prompt, { bos: true });
  const stopTokens = options.stopTokens ?? tokenizer.stopTokens;
  return new Generation(
    (stats) => generateTokens(new ModelSession(model), ids, { ...options, stopTokens }, stats),
    tokenizer,
  );
}
