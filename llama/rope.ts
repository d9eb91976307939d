/**
 * Rotary position embedding tables. The static model takes `freqs_cos`/`freqs_sin` as inputs, so
 * the same tables serve the eager reference and the runtime, for any pattern of positions.
 *
 * @module
 */

import type { ModelConfig, RopeScaling } from "./config.ts";

/**
 * Applies Llama 3.1 frequency scaling: long wavelengths are divided by the factor, short ones
 * kept, and the band between interpolated smoothly (docs/reference/static-llm.md section 1).
 */
function scaleFrequency(f: number, s: RopeScaling): number {
  const wavelength = (2 * Math.PI) / f;
  const lowFreqWavelength = s.originalContextLength / s.lowFreqFactor;
  const highFreqWavelength = s.originalContextLength / s.highFreqFactor;
  if (wavelength < highFreqWavelength) return f;
  if (wavelength > lowFreqWavelength) return f / s.factor;
  const smooth = (s.originalContextLength / wavelength - s.lowFreqFactor) /
    (s.highFreqFactor - s.lowFreqFactor);
  return (1 - smooth) * (f / s.factor) + smooth * f;
}

/**
 * What Llama 3.1 scaling divides frequency `f` by: 1, the factor, or a value between them. This
 * is the form GGUF files store (their `rope_freqs` tensor).
 */
export function llama3Divisor(f: number, s: RopeScaling): number {
  return f / scaleFrequency(f, s);
}

/** The `hd/2` rotation frequencies `f_j = theta^(-2j/hd)`, scaled when the config says so. */
export function ropeFrequencies(config: ModelConfig): Float64Array {
  const half = config.headDim / 2;
  const freqs = new Float64Array(half);
  for (let j = 0; j < half; j++) {
    // Rounded through fp32 like the reference implementations, which compute these in float32.
    const f = Math.fround(1 / Math.fround(config.ropeTheta ** ((2 * j) / config.headDim)));
    freqs[j] = config.ropeScaling === undefined
      ? f
      : Math.fround(scaleFrequency(f, config.ropeScaling));
  }
  return freqs;
}

/** cos and sin of `position * f_j` for each position: two row-major `[positions, hd/2]` tables. */
export interface RopeTable {
  /** `cos(position * f_j)`, `[positions, hd/2]`. */
  readonly cos: Float32Array;
  /** `sin(position * f_j)`, `[positions, hd/2]`. */
  readonly sin: Float32Array;
}

/** Builds the cos/sin tables for the given absolute positions. */
export function ropeTable(freqs: Float64Array, positions: ArrayLike<number>): RopeTable {
  const half = freqs.length;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  for (let p = 0; p < positions.length; p++) {
    const position = positions[p]!;
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(position * freqs[j]!);
      cos[p * half + j] = Math.cos(angle);
      sin[p * half + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
