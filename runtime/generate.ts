/**
 * Generation in two layers. {@link generateTokens} runs the model: the prompt in chunks of L
 * (prefill), then one token per call (decode) or several with lookahead, stopping at a stop
 * token or the token budget. {@link generate} adds text (UTF-8-safe streaming) and statistics.
 *
 * @module
 */

import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { ModelSession } from "./session.ts";
import type { LoadedModel } from "./model.ts";
import {
  argmax,
  penalizeRepeats,
  type RandomSource,
  sampleToken,
  type SamplingOptions,
  seededRandom,
} from "./sampler.ts";
import {
  lookaheadDecode,
  LookaheadError,
  lookaheadLayout,
  type LookaheadOptions,
} from "./lookahead.ts";
import { emptyGenerationStats, type GenerationStats } from "./generation_stats.ts";

/** The defaults of {@link GenerateOptions}, used by {@link generate} and the CLI alike. */
export const GENERATE_DEFAULTS = {
  maxNewTokens: 100,
  temperature: 0.6,
  topP: 0.9,
} as const;

/** Options of a generation. */
export interface GenerateOptions {
  /** Most tokens to generate. @default GENERATE_DEFAULTS.maxNewTokens */
  readonly maxNewTokens?: number;
  /** 0 is greedy. @default GENERATE_DEFAULTS.temperature, and 0 with `lookahead` */
  readonly temperature?: number;
  /** Nucleus mass. @default GENERATE_DEFAULTS.topP */
  readonly topP?: number;
  /** Sample among the k most likely tokens only; 0 keeps all. @default 0 */
  readonly topK?: number;
  /** Drop tokens less than this fraction as likely as the most likely. @default 0 */
  readonly minP?: number;
  /**
   * Divide (multiply, if negative) the logits of recently seen tokens by this; 1 is off. Not with
   * lookahead, which reproduces plain greedy decoding. @default 1
   */
  readonly repeatPenalty?: number;
  /** How many of the last tokens (prompt included) the repeat penalty looks at. @default 64 */
  readonly repeatLastN?: number;
  /** Seed of the sampler's random source. @default a random seed */
  readonly seed?: number;
  /** Tokens that end generation (not emitted). @default the bundle's, else the tokenizer's */
  readonly stopTokens?: readonly number[];
  /**
   * Start a text prompt with BOS (ids are taken as given). @default the bundle's choice, else
   * the tokenizer's
   */
  readonly addBos?: boolean;
  /**
   * Decode with lookahead: greedy output in fewer model calls (single-method bundles). Implies
   * temperature 0.
   */
  readonly lookahead?: LookaheadOptions;
}

/** Options of {@link generateTokens}: a generation's, with its stop tokens resolved. */
export interface TokenGenerationOptions extends GenerateOptions {
  /** Tokens that end generation (not emitted). */
  readonly stopTokens: readonly number[];
  /** Sample only ids below this: the tokenizer's vocabulary. @default every id */
  readonly sampledIds?: number;
  /**
   * Called with each token about to be yielded and the logits row it was sampled from (repeat
   * penalty applied, temperature not), valid only during the call. Not with lookahead, whose
   * tokens are verified rather than sampled from one row.
   */
  readonly onToken?: (token: number, logits: Float16Array | Float32Array) => void;
}

/** Samples each token from the previous call's logits, one decode call per token. */
async function* sampledDecode(
  session: ModelSession,
  logits: Float16Array | Float32Array,
  sampling: SamplingOptions & {
    readonly repeatPenalty: number;
    readonly repeatLastN: number;
    readonly ids: number;
  },
  random: RandomSource,
  maxNewTokens: number,
  stops: ReadonlySet<number>,
  stats: GenerationStats,
  recent: number[],
  onToken: TokenGenerationOptions["onToken"],
): AsyncGenerator<number> {
  for (let generated = 0; generated < maxNewTokens; generated++) {
    const window = recent.slice(Math.max(0, recent.length - sampling.repeatLastN));
    const scored: Float16Array | Float32Array = sampling.repeatPenalty === 1
      ? logits
      : penalizeRepeats(logits, window, sampling.repeatPenalty);
    // Ids past the tokenizer's (a vocabulary padded for the model's shapes) have no text.
    const token = sampleToken(scored, sampling, random, 0, Math.min(sampling.ids, scored.length));
    recent.push(token);
    if (stops.has(token)) return;
    onToken?.(token, scored);
    yield token;
    if (generated + 1 === maxNewTokens) return;
    logits = await session.step([token]);
    stats.modelCalls++;
  }
}

/** Greedy decoding in fewer calls: the first token from the prefill logits, then lookahead. */
async function* lookaheadTokens(
  session: ModelSession,
  logits: Float16Array | Float32Array,
  options: LookaheadOptions,
  maxNewTokens: number,
  stops: ReadonlySet<number>,
  stats: GenerationStats,
): AsyncGenerator<number> {
  const model = session.model;
  const layout = lookaheadLayout(
    options,
    model.inputLength,
    model.backend.flexibleCallLength ? undefined : model.inputLength,
  );
  const first = argmax(logits);
  if (maxNewTokens === 0 || stops.has(first)) return;
  yield first;
  yield* lookaheadDecode(session, first, maxNewTokens - 1, stops, layout, stats);
}

/**
 * The longest prompt accepted, in characters of text or in tokens: a few minutes of prefill on a
 * small model, far beyond any cache, and small enough that encoding it cannot exhaust memory.
 */
export const MAX_PROMPT_CHARACTERS = 1 << 20;

/**
 * Generates token ids after `prompt` (ids, BOS included if wanted). Yields each new token; the
 * stop token that ends generation is not yielded.
 *
 * @param stats updated in place as generation runs
 */
export async function* generateTokens(
  session: ModelSession,
  prompt: readonly number[],
  options: TokenGenerationOptions,
  stats: GenerationStats = emptyGenerationStats(),
): AsyncGenerator<number> {
  if (prompt.length === 0) throw new RangeError("Cannot generate: the prompt has no tokens");
  if (prompt.length > MAX_PROMPT_CHARACTERS) {
    throw new RangeError(
      `Cannot generate: the prompt is ${prompt.length} tokens, more than the ` +
        `${MAX_PROMPT_CHARACTERS} allowed`,
    );
  }
  const temperature = options.temperature ??
    (options.lookahead === undefined ? GENERATE_DEFAULTS.temperature : 0);
  if (options.lookahead !== undefined) {
    if (temperature !== 0) {
      throw new LookaheadError("it reproduces greedy decoding only: use temperature 0");
    }
    if (session.model.manifest.export.multifunction) {
      throw new LookaheadError(
        "it needs every row of logits, which multifunction bundles do not return; export a single-method bundle",
      );
    }
  }
  if (options.lookahead !== undefined && options.onToken !== undefined) {
    throw new LookaheadError("it verifies tokens rather than sampling them from one row of logits");
  }
  const repeatPenalty = options.repeatPenalty ?? 1;
  if (options.lookahead !== undefined && repeatPenalty !== 1) {
    throw new LookaheadError("it reproduces plain greedy decoding: drop the repeat penalty");
  }
  const sampling = {
    temperature,
    topP: options.topP ?? GENERATE_DEFAULTS.topP,
    topK: options.topK ?? 0,
    minP: options.minP ?? 0,
    repeatPenalty,
    repeatLastN: options.repeatLastN ?? 64,
    ids: options.sampledIds ?? Infinity,
  };
  const random: RandomSource = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  const maxNewTokens = options.maxNewTokens ?? GENERATE_DEFAULTS.maxNewTokens;
  const stops = new Set(options.stopTokens);
  const length = session.model.inputLength;
  const backend = session.model.backend;
  stats.backend = [backend.name, backend.kernels].filter((part) => part !== undefined).join(" ");

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
  const tokens = options.lookahead === undefined
    ? sampledDecode(
      session,
      logits!,
      sampling,
      random,
      maxNewTokens,
      stops,
      stats,
      [...prompt],
      options.onToken,
    )
    : lookaheadTokens(session, logits!, options.lookahead, maxNewTokens, stops, stats);
  for await (const token of tokens) {
    stats.generatedTokens++;
    stats.decodeSeconds = (performance.now() - started) / 1000;
    yield token;
  }
  stats.decodeSeconds = (performance.now() - started) / 1000;
  stats.finishReason = stats.generatedTokens < maxNewTokens ? "stop" : "length";
}

/**
 * One generated token and the text it completes (empty while a character is split across
 * tokens). A generation that ends mid-character yields a last event with `token: null` carrying
 * the decoder's remainder.
 */
export interface TokenEvent {
  /** The generated id, or null for the last event carrying the decoder's remainder. */
  readonly token: number | null;
  /** The text this event completes, possibly empty. */
  readonly text: string;
}

/** A running generation: iterate it for tokens and text; `stats` fills in as it goes. */
export class Generation implements AsyncIterable<TokenEvent> {
  /** Live counters; final once iteration ends. */
  readonly stats: GenerationStats = emptyGenerationStats();
  readonly #tokens: () => AsyncGenerator<number>;
  readonly #tokenizer: Tokenizer;
  readonly #prompt: readonly number[];

  /**
   * Wraps a token generator, decoding its ids with `tokenizer`; {@link generate} builds one.
   *
   * @param tokens the token generator, given the live stats
   * @param prompt the prompt's ids, which the text continues (so its first piece keeps its space)
   */
  constructor(
    tokens: (stats: GenerationStats) => AsyncGenerator<number>,
    tokenizer: Tokenizer,
    prompt: readonly number[] = [],
  ) {
    this.#tokens = () => tokens(this.stats);
    this.#tokenizer = tokenizer;
    this.#prompt = prompt;
  }

  /** Runs the generation: each token with the text it completes, then any text held back. */
  async *[Symbol.asyncIterator](): AsyncGenerator<TokenEvent> {
    const decoder = this.#tokenizer.decoder();
    // The decoder drops the space that starts a text; fed the prompt first, it knows the
    // generated text continues one.
    for (const id of this.#prompt) decoder.push(id);
    for await (const token of this.#tokens()) yield { token, text: decoder.push(token) };
    const rest = decoder.flush();
    if (rest !== "") yield { token: null, text: rest };
  }
}

/** Stop tokens of a generation: the options', else the bundle's, else the tokenizer's. */
export function defaultStopTokens(
  model: LoadedModel,
  tokenizer: Tokenizer,
  options: GenerateOptions,
): readonly number[] {
  return options.stopTokens ?? model.manifest.tokenizer?.stopTokens ?? tokenizer.stopTokens;
}

/** Refuses a tokenizer whose ids the model cannot embed: it is not the model's own. */
export function checkTokenizerFits(model: LoadedModel, tokenizer: Tokenizer): void {
  const vocab = model.manifest.model.vocabSize;
  if (tokenizer.vocabSize > vocab) {
    throw new RangeError(
      `Cannot generate: the tokenizer has ${tokenizer.vocabSize} ids but the model only ${vocab}; ` +
        "use the tokenizer the model was trained with",
    );
  }
}

/**
 * The ids of `text` as a prompt: BOS first when `addBos` says so, else when the bundle (else the
 * tokenizer) starts prompts with it.
 */
export function encodeText(
  model: LoadedModel,
  tokenizer: Tokenizer,
  text: string,
  addBos?: boolean,
): number[] {
  const bos = addBos ?? model.manifest.tokenizer?.addBos ?? tokenizer.addBos;
  return tokenizer.encode(text, { bos });
}

/**
 * Generates text after `prompt` (text, or token ids taken as given) with a fresh cache.
 *
 * @throws {RangeError} when the tokenizer has ids the model cannot embed, so it is not the
 *   model's own
 *
 * @example Greedy continuation with the embedded model (after `deno task demo` made the bundle)
 * ```ts ignore
 * import { generate, loadModel, loadTokenizer } from "@llamane/llamane";
 * using model = await loadModel("kjv.llamane");
 * const tokenizer = await loadTokenizer("kjv.llamane/tokenizer.model");
 * const stdout = Deno.stdout.writable.getWriter();
 * for await (const { text } of generate(model, tokenizer, "And God said", { temperature: 0 })) {
 *   await stdout.write(new TextEncoder().encode(text));
 * }
 * stdout.releaseLock();
 * ```
 */
export function generate(
  model: LoadedModel,
  tokenizer: Tokenizer,
  prompt: string | readonly number[],
  options: GenerateOptions = {},
): Generation {
  if (prompt.length > MAX_PROMPT_CHARACTERS) {
    throw new RangeError(
      `Cannot generate: the prompt is ${prompt.length} characters, more than the ` +
        `${MAX_PROMPT_CHARACTERS} allowed (the model attends to the last ` +
        `${model.manifest.export.cacheLen} tokens only)`,
    );
  }
  checkTokenizerFits(model, tokenizer);
  const vocab = model.manifest.model.vocabSize;
  let ids: readonly number[];
  if (typeof prompt === "string") {
    ids = encodeText(model, tokenizer, prompt, options.addBos);
  } else {
    const bad = prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
    if (bad !== undefined) {
      throw new RangeError(`Cannot generate: prompt token ${bad} is not an id below ${vocab}`);
    }
    ids = [...prompt];
  }
  const stopTokens = defaultStopTokens(model, tokenizer, options);
  return new Generation(
    (stats) =>
      generateTokens(
        new ModelSession(model),
        ids,
        { ...options, stopTokens, sampledIds: tokenizer.vocabSize },
        stats,
      ),
    tokenizer,
    ids,
  );
}
