/**
 * Lookahead decoding (docs/reference/static-llm.md section 6): each call runs a lookahead window
 * of Jacobi-style guesses next to G candidate n-grams drawn from a pool, and keeps every candidate
 * token the model confirms. The output is exactly greedy decoding's; the gain is more than one
 * token per model call. Needs a bundle that returns full logits (single-method).
 *
 * Call layout (length L): the lookahead branch is N-1 rows of W slots (slot 0 holds the current
 * token); the verification branch starts at `vo = max(W*(N-1), 1)` with G runs of N-1 tokens.
 *
 * @module
 */

import type { InCallVisibility } from "./call_inputs.ts";
import type { GenerationStats, LookaheadStats } from "./generation_stats.ts";
import type { ModelSession } from "./session.ts";
import { argmax } from "./sampler.ts";

/** The defaults of {@link LookaheadOptions}, used by lookahead decoding and the CLI alike. */
export const LOOKAHEAD_DEFAULTS = {
  ngramSize: 5,
  windowSize: 4,
  verifications: 4,
} as const;

/** Lookahead parameters. */
export interface LookaheadOptions {
  /** N: length of the n-grams collected and verified. @default LOOKAHEAD_DEFAULTS.ngramSize */
  readonly ngramSize?: number;
  /** W: columns of the lookahead window. @default LOOKAHEAD_DEFAULTS.windowSize */
  readonly windowSize?: number;
  /** G: candidate n-grams verified per call. @default LOOKAHEAD_DEFAULTS.verifications */
  readonly verifications?: number;
}

/** Options that make lookahead impossible for a bundle. */
export class LookaheadError extends RangeError {
  /** Builds the message `Cannot decode with lookahead: <detail>`. */
  constructor(detail: string) {
    super(`Cannot decode with lookahead: ${detail}`);
    this.name = "LookaheadError";
  }
}

/** The fixed shape of every lookahead call: which slot sees which, and slot positions. */
export interface LookaheadLayout {
  readonly n: number;
  readonly w: number;
  readonly g: number;
  /** Slots the call uses: the lookahead rows, then the verification runs. */
  readonly slots: number;
  /** First verification slot. */
  readonly verificationOffset: number;
  /** Position of each slot relative to the cache position. */
  readonly positionOffsets: readonly number[];
  /** In-call attention pattern over `callLength` slots. */
  readonly visibility: InCallVisibility;
  readonly callLength: number;
}

/**
 * Lays out the calls for N, W, G in calls of `callLength` slots (at least the slots used).
 *
 * @throws {LookaheadError} unless `(N-1)*(W+G)` fits the bundle's input length
 */
export function lookaheadLayout(
  options: LookaheadOptions,
  inputLength: number,
  callLength?: number,
): LookaheadLayout {
  const n = options.ngramSize ?? LOOKAHEAD_DEFAULTS.ngramSize;
  const w = options.windowSize ?? LOOKAHEAD_DEFAULTS.windowSize;
  const g = options.verifications ?? LOOKAHEAD_DEFAULTS.verifications;
  if (![n, w, g].every(Number.isSafeInteger) || n < 2 || w < 1 || g < 0) {
    throw new LookaheadError(
      `need ngram_size >= 2, window_size >= 1 and n_verifications >= 0, got ${n}, ${w}, ${g}`,
    );
  }
  if ((n - 1) * (w + g) > inputLength) {
    throw new LookaheadError(
      `(ngram_size - 1) * (window_size + n_verifications) = ${
        (n - 1) * (w + g)
      } exceeds the bundle's ` +
        `input_len ${inputLength}; lower them or export with a larger --input_len`,
    );
  }
  const verificationOffset = Math.max(w * (n - 1), 1);
  const slots = verificationOffset + g * (n - 1);
  const length = callLength ?? slots;
  const visibility = new Uint8Array(length * length);
  const see = (row: number, col: number) => (visibility[row * length + col] = 1);
  const positionOffsets = new Array<number>(length).fill(0);
  see(0, 0);
  // Lookahead row i, column j: the first row causally up to j, and column j of rows 1..i.
  for (let i = 0; i < n - 1; i++) {
    for (let j = 0; j < w; j++) {
      const slot = i * w + j;
      positionOffsets[slot] = i + j;
      for (let c = 0; c <= j; c++) see(slot, c);
      for (let r = 1; r <= i; r++) see(slot, r * w + j);
    }
  }
  // Each verification run sees the current token and itself causally.
  for (let branch = 0; branch < g; branch++) {
    const start = verificationOffset + branch * (n - 1);
    for (let k = 0; k < n - 1; k++) {
      positionOffsets[start + k] = k + 1;
      see(start + k, 0);
      for (let c = 0; c <= k; c++) see(start + k, start + c);
    }
  }
  // Slots past the layout only pad a fixed-length call: let them see themselves, so no row of
  // the mask is entirely hidden.
  for (let slot = slots; slot < length; slot++) see(slot, slot);
  return { n, w, g, slots, verificationOffset, positionOffsets, visibility, callLength: length };
}

/** Recent n-gram suffixes by their first token: at most G each, oldest dropped first, no repeats. */
export class NGramPool {
  readonly #capacity: number;
  readonly #suffixes = new Map<number, number[][]>();

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** The suffixes stored for `key`, oldest first. */
  get(key: number): readonly (readonly number[])[] {
    return this.#suffixes.get(key) ?? [];
  }

  /** Remembers `suffix` after `key`, unless already there. */
  add(key: number, suffix: readonly number[]): void {
    if (this.#capacity === 0) return;
    let list = this.#suffixes.get(key);
    if (list === undefined) this.#suffixes.set(key, list = []);
    if (list.some((s) => s.every((t, i) => t === suffix[i]))) return;
    list.push([...suffix]);
    if (list.length > this.#capacity) list.shift();
  }
}

/** Greedy argmax of every row of `[rows, V]` logits. */
function argmaxRows(logits: ArrayLike<number>, rows: number, vocab: number): number[] {
  return Array.from({ length: rows }, (_, r) => argmax(logits, r * vocab, vocab));
}

/**
 * Continues greedy decoding from `token` (the first generated token, not yet in the cache) with
 * lookahead, yielding every token it accepts, `token`'s successors included, until a stop token
 * (not yielded) or `maxNewTokens` more tokens.
 */
export async function* lookaheadDecode(
  session: ModelSession,
  token: number,
  maxNewTokens: number,
  stopTokens: ReadonlySet<number>,
  layout: LookaheadLayout,
  stats: GenerationStats,
): AsyncGenerator<number> {
  const { n, w, g, verificationOffset: vo, callLength } = layout;
  const model = session.model;
  const vocab = model.manifest.model.vocabSize;
  const pool = new NGramPool(g);
  const lookahead: LookaheadStats = stats.lookahead ??= {
    decodeCalls: 0,
    acceptance: new Array(n).fill(0),
  };
  // Every slot starts as the current token, as upstream does; the window fills with guesses.
  const x = new Array<number>(callLength).fill(token);
  let produced = 0;

  while (produced < maxNewTokens) {
    pool.get(x[0]!).forEach((suffix, branch) => {
      suffix.forEach((t, k) => (x[vo + branch * (n - 1) + k] = t));
    });
    const result = await session.forward({
      tokens: x,
      callLength,
      positionOffsets: layout.positionOffsets,
      visibility: layout.visibility,
    });
    stats.modelCalls++;
    lookahead.decodeCalls++;
    if (result.logits.length !== callLength * vocab) {
      throw new LookaheadError(
        "the bundle returns only the last logits row (a multifunction export); export a single-method bundle",
      );
    }
    const y = argmaxRows(result.logits, layout.slots, vocab);

    // Collect n-grams from the window's columns: a column read downwards, then its output.
    for (let j = 0; j < w; j++) {
      const suffix: number[] = [];
      for (let r = 1; r < n - 1; r++) suffix.push(x[r * w + j]!);
      suffix.push(y[(n - 2) * w + j]!);
      pool.add(x[j]!, suffix);
    }

    // Verify: a branch is accepted while its inputs are what the model just produced.
    let accepted: number[] = [];
    let acceptedBranch = -1;
    for (let branch = 0; branch < g; branch++) {
      const start = vo + branch * (n - 1);
      const match: number[] = [];
      let previous = y[0]!;
      for (let k = 0; k < n - 1 && x[start + k] === previous; k++) {
        previous = y[start + k]!;
        match.push(previous);
      }
      if (match.length > accepted.length) {
        accepted = match;
        acceptedBranch = branch;
      }
    }
    const stopAt = accepted.findIndex((t) => stopTokens.has(t));
    if (stopAt >= 0) accepted = accepted.slice(0, stopAt + 1);

    // The cache takes the current token and the accepted branch's inputs, in order.
    const start = vo + acceptedBranch * (n - 1);
    const entries = [0, ...accepted.map((_, k) => start + k)];
    session.cache.commit(result.newKeys, result.newValues, callLength, entries);
    lookahead.acceptance[accepted.length]!++;

    for (const t of [y[0]!, ...accepted]) {
      if (stopTokens.has(t)) return;
      yield t;
      if (++produced === maxNewTokens) return;
    }

    // Shift the window up a row; the last row takes this call's outputs.
    for (let r = 0; r < n - 2; r++) for (let j = 0; j < w; j++) x[r * w + j] = x[(r + 1) * w + j]!;
    for (let j = 0; j < w; j++) x[(n - 2) * w + j] = y[(n - 2) * w + j]!;
    x[0] = accepted.at(-1) ?? y[0]!;
  }
}
