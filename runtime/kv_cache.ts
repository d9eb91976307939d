/**
 * The runtime-owned key/value caches: C slots per layer, shared by every call. The model never
 * writes them; after each call the runtime copies the call's new entries in
 * (docs/reference/static-llm.md section 3, the "smart mask"). The first slots keep the sequence's
 * first tokens for good and the others are a ring buffer (`llama/attention_window.ts`).
 *
 * @module
 */

import type { FloatDType } from "../coreml/dtype.ts";
import { type AttentionWindow, attentionWindow, cacheSlot } from "../llama/attention_window.ts";

/** Storage for activations: fp16 bundles keep them as fp16, fp32 bundles as fp32. */
export type FloatArray = Float16Array | Float32Array;

/** Allocates a float array of the given dtype. */
export function allocateFloats(dtype: FloatDType, length: number): FloatArray {
  return dtype === "fp16" ? new Float16Array(length) : new Float32Array(length);
}

/** The cache geometry of a bundle. */
export interface KvCacheShape {
  /** Layers, each with a key and a value cache. */
  readonly layers: number;
  /** Key/value heads Hkv. */
  readonly kvHeads: number;
  /** Slots per cache, C. */
  readonly cacheLength: number;
  /** Per-head width hd. */
  readonly headDim: number;
  /** Element type, the bundle's float type. */
  readonly dtype: FloatDType;
  /** Positions the model was trained on; unknown, the cache keeps no token for good. */
  readonly trainedContext?: number | undefined;
}

/** What each token attends to with caches of `shape`: the tokens they keep. */
export function cacheWindow(shape: KvCacheShape): AttentionWindow {
  return attentionWindow(shape.cacheLength, shape.trainedContext);
}

/** Key and value caches for every layer, plus the count of tokens committed so far. */
export class KvCache {
  /** The geometry these caches were allocated for. */
  readonly shape: KvCacheShape;
  /** Per layer, `[1, Hkv, C, hd]` row-major. */
  readonly keys: readonly FloatArray[];
  /** Per layer, `[1, Hkv, C, hd]` row-major. */
  readonly values: readonly FloatArray[];
  /** What each token attends to: the tokens these caches keep. */
  readonly window: AttentionWindow;
  #position = 0;

  /** Allocates zeroed caches of `shape`, at position 0. */
  constructor(shape: KvCacheShape) {
    this.shape = shape;
    this.window = cacheWindow(shape);
    const size = shape.kvHeads * shape.cacheLength * shape.headDim;
    this.keys = Array.from({ length: shape.layers }, () => allocateFloats(shape.dtype, size));
    this.values = Array.from({ length: shape.layers }, () => allocateFloats(shape.dtype, size));
  }

  /** Tokens committed so far: the absolute position of the next token. */
  get position(): number {
    return this.#position;
  }

  /**
   * Slots holding a token, `min(position, C)`. Slots fill in order from 0 and, once full, the
   * oldest token after the sinks is overwritten, so the filled slots are always a prefix.
   */
  get filledSlots(): number {
    return Math.min(this.#position, this.shape.cacheLength);
  }

  /**
   * Appends entries of a call to every layer's cache, in order, advancing the position by
   * `entries.length`.
   *
   * @param newKeys per layer, the call's keys `[1, Hkv, callLength, hd]`
   * @param newValues per layer, the call's values, same shape
   * @param callLength the L of the call that produced them
   * @param entries which call positions to keep (e.g. `[0, n)` for n real tokens; lookahead keeps
   *   the current token and the accepted branch)
   */
  commit(
    newKeys: readonly FloatArray[],
    newValues: readonly FloatArray[],
    callLength: number,
    entries: readonly number[],
  ): void {
    const { layers, kvHeads, cacheLength, headDim } = this.shape;
    if (newKeys.length !== layers || newValues.length !== layers) {
      throw new RangeError(
        `Cannot update the KV cache: expected ${layers} layers, got ${newKeys.length}`,
      );
    }
    for (const entry of entries) {
      if (!Number.isInteger(entry) || entry < 0 || entry >= callLength) {
        throw new RangeError(
          `Cannot update the KV cache: entry ${entry} is outside the call [0, ${callLength})`,
        );
      }
    }
    // Only the sinks and the newest C - sinks entries survive; skipping the rest avoids writing
    // a slot twice.
    const { sinks } = this.window;
    const survivorsFrom = this.#position + entries.length - (cacheLength - sinks);
    const copy = (source: FloatArray, target: FloatArray) => {
      entries.forEach((entry, i) => {
        const position = this.#position + i;
        if (position >= sinks && position < survivorsFrom) return;
        const slot = cacheSlot(this.window, position);
        for (let head = 0; head < kvHeads; head++) {
          const from = (head * callLength + entry) * headDim;
          target.set(source.subarray(from, from + headDim), (head * cacheLength + slot) * headDim);
        }
      });
    };
    for (let layer = 0; layer < layers; layer++) {
      copy(newKeys[layer]!, this.keys[layer]!);
      copy(newValues[layer]!, this.values[layer]!);
    }
    this.#position += entries.length;
  }

  /**
   * Forgets the tokens from `position` on, so that the next call continues after the first
   * `position` tokens. Possible only while no token has been evicted (the position never passed
   * C); returns false, changing nothing, otherwise.
   */
  rewind(position: number): boolean {
    if (!Number.isInteger(position) || position < 0 || position > this.#position) {
      throw new RangeError(
        `Cannot rewind the KV cache to ${position}: it holds positions [0, ${this.#position})`,
      );
    }
    if (this.#position > this.shape.cacheLength) return false;
    this.#position = position;
    return true;
  }

  /** Forgets every token: the next call starts at position 0. */
  reset(): void {
    this.#position = 0;
  }
}
