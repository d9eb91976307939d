/**
 * The eager reference forward: tokens -> logits for one causal sequence, in fp32, straight from the
 * checkpoint. It is the in-project numerics oracle that exported bundles are compared against
 * (upstream's `--use_eager`), so it is written for clarity, not speed: one step per line, as in
 * Meta's `model.py`.
 *
 * @module
 */

import type { TensorSource } from "../checkpoint/tensor_source.ts";
import type { ModelConfig } from "./config.ts";
import { type AttentionWindow, firstRecentPosition, UNBOUNDED_WINDOW } from "./attention_window.ts";
import { ropeFrequencies, ropeTable } from "./rope.ts";
import { EMBEDDING, FINAL_NORM, layerTensorNames, OUTPUT, validateTensors } from "./weights.ts";

interface LayerWeights {
  readonly attentionNorm: Float32Array; // (D)
  readonly wq: Float32Array; // (H*hd, D)
  readonly wk: Float32Array; // (Hkv*hd, D)
  readonly wv: Float32Array; // (Hkv*hd, D)
  readonly wo: Float32Array; // (D, H*hd)
  readonly ffnNorm: Float32Array; // (D)
  readonly w1: Float32Array; // (F, D)
  readonly w2: Float32Array; // (D, F)
  readonly w3: Float32Array; // (F, D)
}

/** out (T, n) = x (T, k) @ w (n, k)^T: a linear layer without bias. */
function linear(x: Float32Array, w: Float32Array, k: number): Float32Array {
  const t = x.length / k;
  const n = w.length / k;
  const out = new Float32Array(t * n);
  // Weight rows outside, tokens inside: each row is read from memory once per call, not per token.
  for (let col = 0; col < n; col++) {
    const wOffset = col * k;
    for (let row = 0; row < t; row++) {
      const xOffset = row * k;
      let sum = 0;
      for (let i = 0; i < k; i++) sum += x[xOffset + i]! * w[wOffset + i]!;
      out[row * n + col] = sum;
    }
  }
  return out;
}

/** RMSNorm of each row of x (T, D): `x * rsqrt(mean(x^2) + eps) * weight`. */
function rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array {
  const d = weight.length;
  const out = new Float32Array(x.length);
  for (let offset = 0; offset < x.length; offset += d) {
    let sumSquares = 0;
    for (let i = 0; i < d; i++) sumSquares += x[offset + i]! ** 2;
    const scale = 1 / Math.sqrt(sumSquares / d + eps);
    for (let i = 0; i < d; i++) out[offset + i] = Math.fround(x[offset + i]! * scale) * weight[i]!;
  }
  return out;
}

/**
 * Rotates adjacent pairs (x[2j], x[2j+1]) of every head in place by the angle of its position
 * (Meta layout). x is (T, heads * hd); cos and sin are (T, hd/2).
 */
function applyRope(x: Float32Array, cos: Float32Array, sin: Float32Array, headDim: number): void {
  const half = headDim / 2;
  const width = x.length / (cos.length / half);
  for (let offset = 0, pos = 0; offset < x.length; offset += width, pos++) {
    for (let head = offset; head < offset + width; head += headDim) {
      for (let j = 0; j < half; j++) {
        const c = cos[pos * half + j]!;
        const s = sin[pos * half + j]!;
        const a = x[head + 2 * j]!;
        const b = x[head + 2 * j + 1]!;
        x[head + 2 * j] = a * c - b * s;
        x[head + 2 * j + 1] = a * s + b * c;
      }
    }
  }
}

/**
 * Causal attention with grouped-query heads for the newest tokens of a sequence: q (T, H*hd) holds
 * positions `position ..`; `keys` and `values` hold one (Hkv*hd) row per position still attended
 * to (see {@link SequenceState}), these tokens' rows last. Each query attends to itself and the
 * tokens in its window (`llama/attention_window.ts`).
 */
function windowedAttention(
  q: Float32Array,
  keys: readonly Float32Array[],
  values: readonly Float32Array[],
  state: SequenceState,
  config: ModelConfig,
): Float32Array {
  const { nHeads, nKvHeads, headDim } = config;
  const t = q.length / (nHeads * headDim);
  const groupSize = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(q.length);
  const scores = new Float64Array(keys.length);
  for (let i = 0; i < t; i++) {
    const query = state.position + i;
    // The sinks within reach, then the recent tokens up to itself, as row ranges [from, to).
    const { sinks, sinkReach } = state.window;
    const ranges = [
      [Math.max(0, query - sinkReach + 1), Math.min(sinks, query + 1)],
      [rowOf(state, firstRecentPosition(state.window, query)), rowOf(state, query) + 1],
    ];
    for (let head = 0; head < nHeads; head++) {
      const kvOffset = Math.floor(head / groupSize) * headDim;
      const qOffset = (i * nHeads + head) * headDim;
      // scores = q K^T / sqrt(hd) over the visible rows; the rest are masked out.
      let max = -Infinity;
      for (const [from, to] of ranges) {
        for (let j = from!; j < to!; j++) {
          const k = keys[j]!;
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[qOffset + d]! * k[kvOffset + d]!;
          scores[j] = dot * scale;
          max = Math.max(max, scores[j]!);
        }
      }
      // softmax, then the weighted sum of values.
      let total = 0;
      for (const [from, to] of ranges) {
        for (let j = from!; j < to!; j++) {
          scores[j] = Math.exp(scores[j]! - max);
          total += scores[j]!;
        }
      }
      for (let d = 0; d < headDim; d++) {
        let sum = 0;
        for (const [from, to] of ranges) {
          for (let j = from!; j < to!; j++) sum += scores[j]! * values[j]![kvOffset + d]!;
        }
        out[qOffset + d] = sum / total;
      }
    }
  }
  return out;
}

/** Splits x (T, width) into T rows. */
function rowsOf(x: Float32Array, width: number): Float32Array[] {
  return Array.from({ length: x.length / width }, (_, i) => x.subarray(i * width, (i + 1) * width));
}

function addInPlace(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i]! += y[i]!;
}

/** silu(a) * b, elementwise, into a. */
function swiGluInPlace(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) {
    const gate = a[i]!;
    a[i] = (gate / (1 + Math.exp(-gate))) * b[i]!;
  }
}

/** A sequence the eager forward runs a few tokens at a time, as a bundle runs call by call. */
export interface EagerSequence {
  /** Tokens run so far: the position of the next one. */
  readonly position: number;
  /**
   * Runs the sequence's next tokens and returns their logits, row-major (T, V).
   *
   * @throws {RangeError} for no tokens or a token id outside the vocabulary
   */
  next(tokens: readonly number[]): Float32Array;
}

/**
 * A sequence read so far. Its rows are the sinks' positions, then those from `oldest` on: what
 * the next tokens can still attend to.
 */
interface SequenceState {
  position: number;
  /** The first position after the sinks that still has a row. */
  oldest: number;
  /** Per layer, one (Hkv*hd) key row per kept position. */
  readonly keys: Float32Array[][];
  /** Per layer, one (Hkv*hd) value row per kept position. */
  readonly values: Float32Array[][];
  /** What each token attends to: a bundle's window over its cache. */
  readonly window: AttentionWindow;
}

/** The row of every layer's keys and values holding `position` (a sink or from `oldest` on). */
function rowOf(state: SequenceState, position: number): number {
  const { sinks } = state.window;
  return position < sinks ? position : sinks + position - state.oldest;
}

/** A Llama with every weight loaded as fp32, ready to run causal forwards. */
export class EagerLlama {
  /** The resolved model shape. */
  readonly config: ModelConfig;
  readonly #embedding: Float32Array; // (V, D)
  readonly #layers: readonly LayerWeights[];
  readonly #finalNorm: Float32Array; // (D)
  readonly #output: Float32Array; // (V, D)
  readonly #freqs: Float64Array; // (hd/2)

  private constructor(
    config: ModelConfig,
    embedding: Float32Array,
    layers: LayerWeights[],
    finalNorm: Float32Array,
    output: Float32Array,
  ) {
    this.config = config;
    this.#embedding = embedding;
    this.#layers = layers;
    this.#finalNorm = finalNorm;
    this.#output = output;
    this.#freqs = ropeFrequencies(config);
  }

  /** Validates the checkpoint against the config, then reads every weight into memory as fp32. */
  static async load(source: TensorSource, config: ModelConfig): Promise<EagerLlama> {
    validateTensors(source.path, config, source.list());
    const read = (name: string) => source.readFloat32(name);
    const layers: LayerWeights[] = [];
    for (let layer = 0; layer < config.nLayers; layer++) {
      const n = layerTensorNames(layer);
      layers.push({
        attentionNorm: await read(n.attentionNorm),
        wq: await read(n.wq),
        wk: await read(n.wk),
        wv: await read(n.wv),
        wo: await read(n.wo),
        ffnNorm: await read(n.ffnNorm),
        w1: await read(n.w1),
        w2: await read(n.w2),
        w3: await read(n.w3),
      });
    }
    const embedding = await read(EMBEDDING);
    const output = config.tiedOutput ? embedding : await read(OUTPUT);
    return new EagerLlama(config, embedding, layers, await read(FINAL_NORM), output);
  }

  /**
   * Runs the whole sequence causally from position 0 and returns the logits, row-major (T, V).
   *
   * @throws {RangeError} for an empty sequence or a token id outside the vocabulary
   */
  forward(tokens: readonly number[]): Float32Array {
    return this.begin().next(tokens);
  }

  /**
   * Starts a sequence whose tokens are given a few at a time. Each token attends to itself and
   * the tokens in `window` before it: a bundle's window over its cache
   * (`llama/attention_window.ts`), every earlier token by default.
   */
  begin(window: AttentionWindow = UNBOUNDED_WINDOW): EagerSequence {
    if (!(window.cacheLength >= 0)) {
      throw new RangeError(`Cannot begin a sequence with a cache of ${window.cacheLength}`);
    }
    const layers = this.#layers.length;
    const state: SequenceState = {
      position: 0,
      oldest: window.sinks,
      keys: Array.from({ length: layers }, () => []),
      values: Array.from({ length: layers }, () => []),
      window,
    };
    return {
      get position() {
        return state.position;
      },
      next: (tokens) => this.#run(state, tokens),
    };
  }

  #run(state: SequenceState, tokens: readonly number[]): Float32Array {
    const { dim, headDim, hiddenDim, vocabSize, normEps, nHeads, nKvHeads } = this.config;
    const t = tokens.length;
    if (t === 0) throw new RangeError("Cannot run forward: the token sequence is empty");

    // h (T, D) = tok_embeddings[tokens]
    const h = new Float32Array(t * dim);
    tokens.forEach((token, i) => {
      if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
        throw new RangeError(
          `Cannot run forward: token ${token} at position ${
            state.position + i
          } is outside [0, ${vocabSize})`,
        );
      }
      h.set(this.#embedding.subarray(token * dim, (token + 1) * dim), i * dim);
    });
    const positions = Array.from({ length: t }, (_, i) => state.position + i);
    const { cos, sin } = ropeTable(this.#freqs, positions);

    this.#layers.forEach((w, layer) => {
      // h = h + wo(attention(rope(wq x), rope(wk x), wv x)), x = attention_norm(h)
      const x = rmsNorm(h, w.attentionNorm, normEps);
      const q = linear(x, w.wq, dim);
      const k = linear(x, w.wk, dim);
      const v = linear(x, w.wv, dim);
      applyRope(q, cos, sin, headDim);
      applyRope(k, cos, sin, headDim);
      const keys = state.keys[layer]!;
      const values = state.values[layer]!;
      keys.push(...rowsOf(k, nKvHeads * headDim));
      values.push(...rowsOf(v, nKvHeads * headDim));
      const attended = windowedAttention(q, keys, values, state, this.config);
      addInPlace(h, linear(attended, w.wo, nHeads * headDim));

      // h = h + w2(silu(w1 x) * w3 x), x = ffn_norm(h)
      const y = rmsNorm(h, w.ffnNorm, normEps);
      const gate = linear(y, w.w1, dim);
      swiGluInPlace(gate, linear(y, w.w3, dim));
      addInPlace(h, linear(gate, w.w2, hiddenDim));
    });

    state.position += t;
    // The next token sees the sinks and the recent tokens from here on: the rows between are done.
    const drop = Math.max(0, firstRecentPosition(state.window, state.position) - state.oldest);
    for (const rows of [...state.keys, ...state.values]) rows.splice(state.window.sinks, drop);
    state.oldest += drop;

    // logits (T, V) = output(norm(h))
    return linear(rmsNorm(h, this.#finalNorm, normEps), this.#output, dim);
  }
}
