/**
 * Choosing the next token from logits: greedy at temperature 0, otherwise temperature with top-k,
 * nucleus (top-p) and min-p filters, sampled with an injected random source, so that a seed makes
 * runs repeatable. A repetition penalty, as llama.cpp applies it, lowers the logits of recent
 * tokens before any of this.
 *
 * @module
 */

/** A source of uniform numbers in `[0, 1)`. */
export type RandomSource = () => number;

/** How to pick tokens. */
export interface SamplingOptions {
  /** 0 means greedy; higher flattens the distribution. */
  readonly temperature: number;
  /** Keep the smallest set of tokens whose probability reaches this mass. */
  readonly topP: number;
  /** Keep only the this many most likely tokens; 0 keeps all. @default 0 */
  readonly topK?: number;
  /** Keep only tokens at least this fraction as likely as the most likely one. @default 0 */
  readonly minP?: number;
}

/**
 * Penalises tokens seen recently, as llama.cpp's repeat penalty does: a positive logit is divided
 * by `penalty`, a negative one multiplied, once per distinct token of `recent`. Returns a copy.
 */
export function penalizeRepeats(
  logits: ArrayLike<number>,
  recent: Iterable<number>,
  penalty: number,
): Float32Array {
  const out = Float32Array.from(logits);
  for (const token of new Set(recent)) {
    const value = out[token];
    if (value === undefined) continue;
    out[token] = value > 0 ? value / penalty : value * penalty;
  }
  return out;
}

/**
 * A small, fast, seedable generator (Mulberry32): good enough for sampling, and the same sequence
 * on every platform for a given seed.
 */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Index of the largest value (the first one on ties), over `logits[offset, offset + length)`. */
export function argmax(
  logits: ArrayLike<number>,
  offset: number = 0,
  length: number = logits.length - offset,
): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    const value = logits[offset + i]!;
    if (value > bestValue) {
      bestValue = value;
      best = i;
    }
  }
  return best;
}

/**
 * Samples a token from one row of logits.
 *
 * @param logits the row, or a larger array with `offset`/`length` selecting the row
 */
export function sampleToken(
  logits: ArrayLike<number>,
  options: SamplingOptions,
  random: RandomSource,
  offset: number = 0,
  length: number = logits.length - offset,
): number {
  if (options.temperature === 0) return argmax(logits, offset, length);

  // softmax(logits / temperature)
  const max = logits[offset + argmax(logits, offset, length)]!;
  const probabilities = new Float64Array(length);
  let total = 0;
  for (let i = 0; i < length; i++) {
    probabilities[i] = Math.exp((logits[offset + i]! - max) / options.temperature);
    total += probabilities[i]!;
  }

  // Top-k and min-p filter first, and the nucleus is taken from what they leave, as llama.cpp
  // chains them; min-p compares with the most likely token, whose weight is 1 after the shift.
  const topK = options.topK ?? 0;
  const minP = options.minP ?? 0;
  const filtered = topK > 0 || minP > 0;
  // Without them, a token below (1 - topP) / (V - 1) of the mass can never be needed to reach
  // topP, so the sort only sees the few plausible candidates.
  const cutoff = filtered
    ? minP
    : options.topP >= 1
    ? 0
    : ((1 - options.topP) / Math.max(length - 1, 1)) * total;
  let candidates: number[] = [];
  for (let i = 0; i < length; i++) if (probabilities[i]! >= cutoff) candidates.push(i);
  candidates.sort((a, b) => probabilities[b]! - probabilities[a]! || a - b);
  if (filtered) {
    if (topK > 0) candidates = candidates.slice(0, topK);
    total = 0;
    for (const i of candidates) total += probabilities[i]!;
  }

  let nucleus = candidates.length;
  let mass = 0;
  for (let i = 0; i < candidates.length; i++) {
    mass += probabilities[candidates[i]!]!;
    if (mass >= options.topP * total) {
      nucleus = i + 1;
      break;
    }
  }

  let target = random() * mass;
  for (let i = 0; i < nucleus; i++) {
    target -= probabilities[candidates[i]!]!;
    if (target < 0) return candidates[i]!;
  }
  return candidates[nucleus - 1]!;
}
