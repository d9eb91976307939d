/**
 * The names of every input and output of the static model (the README's "The bundle"). The
 * exporter writes them and the runtime looks them up: both import them from here.
 *
 * @module
 */

/** Version of the I/O contract below, recorded in every bundle manifest. */
export const IO_CONTRACT_VERSION = 1;

/** Token ids `int32 [1, L]`, padded with 0 past the real tokens. */
export const TOKENS = "tokens";
/** Additive attention mask `[1, L, C + L]`: 0 visible, {@link MASK_HIDDEN} hidden; cache slots first. */
export const MASK = "mask";
/**
 * The mask's value at a hidden position. Finite, so that no softmax meets an infinity (fp16
 * softmax over -inf has given NaNs on the Neural Engine in other projects), yet far enough below
 * any score that exp() of a hidden entry underflows to exactly 0 in fp32 (below about -104) as it
 * does for -inf: hidden positions add nothing, bit for bit, while scores differ by less than 9,800.
 * Exactly representable in fp16.
 */
export const MASK_HIDDEN = -1e4;
/** RoPE tables `[L, hd/2]` for the positions of this call. */
export const FREQS_COS = "freqs_cos";
/** See {@link FREQS_COS}. */
export const FREQS_SIN = "freqs_sin";
/** Index of the last real token of the call, `int32 [1]` (multifunction bundles only). */
export const LAST_VALID_TOKEN_POS = "last_valid_token_pos";
/** Logits `[1, L, V]` (single method) or `[1, 1, V]` (multifunction). */
export const LOGITS = "logits";

/**
 * Part `i` of the logits, `[1, L, V_i]` or `[1, 1, V_i]`, for vocabularies too wide for one axis
 * on the Neural Engine: the parts, in order along the vocabulary, replace {@link LOGITS}.
 */
export function logitsPart(i: number): string {
  return `${LOGITS}_${i}`;
}

/** Whether `name` is one of the logits or a part of them. */
export function isLogits(name: string): boolean {
  return name === LOGITS || /^logits_\d+$/.test(name);
}

/** Key cache of layer `i`, `[1, Hkv, C, hd]`. */
export function kCache(layer: number): string {
  return `k_cache_${layer}`;
}

/** Value cache of layer `i`, `[1, Hkv, C, hd]`. */
export function vCache(layer: number): string {
  return `v_cache_${layer}`;
}

/** This call's keys of layer `i`, RoPE applied, `[1, Hkv, L, hd]`. */
export function kNew(layer: number): string {
  return `k_new_${layer}`;
}

/** This call's values of layer `i`, `[1, Hkv, L, hd]`. */
export function vNew(layer: number): string {
  return `v_new_${layer}`;
}

/**
 * The hidden state `[1, L, D]` entering layer `i` (so `hidden_<n_layers>` leaves the last layer).
 * Naming each boundary by its layer keeps input and output names distinct within a piece and lets
 * a bundle be cut between any two layers.
 */
export function hidden(layer: number): string {
  return `hidden_${layer}`;
}

/**
 * The shape of input or output `name` in a call of `callLength` tokens, given its shape in the
 * exported function (`exportedLength` tokens). Which axes grow with L is fixed by the contract,
 * so it is decided by name, never by comparing sizes (L may equal another dimension).
 */
export function shapeForCall(
  name: string,
  exportedShape: readonly number[],
  exportedLength: number,
  callLength: number,
): number[] {
  const shape = [...exportedShape];
  const delta = callLength - exportedLength;
  if (
    name === TOKENS || isLogits(name) && shape[1] === exportedLength || name.startsWith("hidden_")
  ) {
    shape[1]! += delta;
  } else if (name === MASK) {
    shape[1]! += delta;
    shape[2]! += delta;
  } else if (name === FREQS_COS || name === FREQS_SIN) {
    shape[0]! += delta;
  } else if (name.startsWith("k_new_") || name.startsWith("v_new_")) {
    shape[2]! += delta;
  }
  return shape;
}
