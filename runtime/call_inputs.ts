/**
 * Builds the inputs of one forward call from the cache state: padded tokens, the additive mask over
 * `[cache slots | this call]`, and the RoPE tables for the call's positions.
 *
 * @module
 */

import { ropeTable } from "../llama/rope.ts";
import { cacheSlot, firstRecentPosition, inWindow } from "../llama/attention_window.ts";
import {
  FREQS_COS,
  FREQS_SIN,
  LAST_VALID_TOKEN_POS,
  MASK,
  MASK_HIDDEN,
  TOKENS,
} from "../bundle/io_names.ts";
import { allocateFloats, type FloatArray, type KvCache } from "./kv_cache.ts";

/** Which call slots each call slot may attend to: `visible[row * L + col]`, 1 = visible. */
export type InCallVisibility = Uint8Array;

/** The causal pattern: each slot sees itself and the slots before it. */
export function causalVisibility(callLength: number): InCallVisibility {
  const visible = new Uint8Array(callLength * callLength);
  for (let row = 0; row < callLength; row++) {
    visible.fill(1, row * callLength, row * callLength + row + 1);
  }
  return visible;
}

/** What one call feeds the model. */
export interface CallSpec {
  /** Tokens for the first slots; the rest of the call is padded with 0. */
  readonly tokens: readonly number[];
  /** L of this call. */
  readonly callLength: number;
  /** Position of each slot relative to the cache position. @default slot index */
  readonly positionOffsets?: readonly number[];
  /** In-call attention pattern. @default causal */
  readonly visibility?: InCallVisibility;
}

/** The named input tensors of a call, flat row-major. */
export type CallInputs = Map<string, Int32Array | FloatArray>;

/**
 * Builds `tokens`, `mask`, `freqs_cos` and `freqs_sin` for a call at the cache's position.
 *
 * @param freqs the model's RoPE frequencies (see `ropeFrequencies`)
 */
export function buildCallInputs(cache: KvCache, freqs: Float64Array, spec: CallSpec): CallInputs {
  const { callLength } = spec;
  const { cacheLength, dtype } = cache.shape;
  if (spec.tokens.length > callLength) {
    throw new RangeError(
      `Cannot build a call: ${spec.tokens.length} tokens exceed the call length ${callLength}`,
    );
  }

  const tokens = new Int32Array(callLength);
  tokens.set(spec.tokens);

  const offsets = Array.from({ length: callLength }, (_, i) => spec.positionOffsets?.[i] ?? i);
  const positions = offsets.map((offset) => cache.position + offset);

  // mask (1, L, C + L). Every token attends to the sinks within reach and the tokens after them
  // in its window (llama/attention_window.ts), wherever they sit: a row hides the cached tokens
  // outside its window, and call slots outside it. So a token's logits are the same whether it is
  // decoded alone, prefilled in a chunk or verified by lookahead. Beyond that, filled cache slots
  // are visible and the call follows `visibility`.
  const { window } = cache;
  const width = cacheLength + callLength;
  const mask = allocateFloats(dtype, callLength * width).fill(MASK_HIDDEN);
  const visibility = spec.visibility ?? causalVisibility(callLength);
  const cachedSinks = Math.min(window.sinks, cache.position);
  const cachedRecentFrom = firstRecentPosition(window, cache.position);
  for (let row = 0; row < callLength; row++) {
    const base = row * width;
    mask.fill(0, base, base + cache.filledSlots);
    const query = positions[row]!;
    for (let key = 0; key < cachedSinks; key++) {
      if (!inWindow(window, query, key)) mask[base + cacheSlot(window, key)] = MASK_HIDDEN;
    }
    const recentFrom = Math.min(cache.position, firstRecentPosition(window, query));
    for (let key = cachedRecentFrom; key < recentFrom; key++) {
      mask[base + cacheSlot(window, key)] = MASK_HIDDEN;
    }
    for (let col = 0; col < callLength; col++) {
      if (visibility[row * callLength + col] && inWindow(window, query, positions[col]!)) {
        mask[base + cacheLength + col] = 0;
      }
    }
  }

  const table = ropeTable(freqs, positions);
  const convert = (values: Float32Array) => dtype === "fp16" ? new Float16Array(values) : values;

  return new Map<string, Int32Array | FloatArray>([
    [TOKENS, tokens],
    // Read only by multifunction bundles, which return the logits of this token alone.
    [LAST_VALID_TOKEN_POS, Int32Array.of(spec.tokens.length - 1)],
    [MASK, mask],
    [FREQS_COS, convert(table.cos)],
    [FREQS_SIN, convert(table.sin)],
  ]);
}
