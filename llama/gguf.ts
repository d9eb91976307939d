/**
 * GGUF Llama checkpoints: llama.cpp's metadata keys -> {@link ModelConfig}, and GGUF tensor names
 * -> Meta's. GGUF keeps Meta's adjacent-pair order for q and k rows (llama.cpp's converter undoes
 * Hugging Face's permutation), so only names change. Llama 3.x files carry their RoPE scaling as a
 * `rope_freqs` tensor of per-frequency divisors: its Llama 3 parameters are recovered from it and
 * checked to reproduce every divisor, so the rest of the project computes the same frequencies.
 *
 * @module
 */

import type { GgufHeader, GgufValue } from "../checkpoint/gguf.ts";
import type { TensorInfo } from "../checkpoint/tensor_source.ts";
import { type ModelConfig, ParamsError, type RopeScaling } from "./config.ts";
import { NotLlamaError, type ResolvedConfig } from "./provenance.ts";
import { llama3Divisor } from "./rope.ts";

/** The tensor holding Llama 3 RoPE divisors. */
export const ROPE_FREQS = "rope_freqs.weight";

/** What sets other GGUF architectures apart from a Llama, for the error that refuses them. */
const KNOWN_DIFFERENCES: Readonly<Record<string, string>> = {
  qwen2: "biases on the q, k and v projections",
  qwen3: "RMSNorm on each head's queries and keys (qk-norm)",
  qwen2moe: "mixture-of-experts feed-forward layers",
  qwen3moe: "mixture-of-experts feed-forward layers, qk-norm",
  gemma: "RMSNorm scaled by 1 + weight, scaled embeddings, GELU feed-forward",
  gemma2: "sliding-window layers, logit soft-capping, extra norms, GELU feed-forward",
  gemma3: "sliding-window layers, qk-norm, extra norms, GELU feed-forward",
  phi3: "fused qkv and gate/up projections",
  olmo2: "qk-norm and norms after attention and feed-forward",
  deepseek2: "multi-head latent attention and mixture-of-experts layers",
};

/** Relative error allowed between the recovered scaling's divisors and the stored ones. */
const DIVISOR_TOLERANCE = 1e-5;

function key(name: string): string {
  return `GGUF "${name}"`;
}

/**
 * Resolves a GGUF file's Llama config from its metadata and tensor table.
 *
 * @param path the GGUF file, for messages
 * @param header its parsed header
 * @param ropeFreqs the `rope_freqs` tensor's values when the file has one
 * @throws {NotLlamaError} when the file holds another architecture
 * @throws {ParamsError} when a key is missing or makes no sense
 */
export function resolveGgufConfig(
  path: string,
  header: GgufHeader,
  ropeFreqs: Float32Array | undefined,
): ResolvedConfig {
  const value = (name: string): GgufValue | undefined => header.metadata.get(name)?.value;
  const architecture = String(value("general.architecture") ?? "an unnamed architecture");
  if (architecture !== "llama") {
    throw new NotLlamaError(path, `architecture "${architecture}"`, [
      KNOWN_DIFFERENCES[architecture] ?? `only "llama" is supported`,
    ]);
  }
  const experts = value("llama.expert_count");
  if (typeof experts === "number" && experts > 1) {
    throw new NotLlamaError(path, `architecture "llama" with ${experts} experts`, [
      "mixture-of-experts feed-forward layers",
    ]);
  }
  const scalingType = value("llama.rope.scaling.type");
  if (scalingType !== undefined && scalingType !== "none") {
    throw new NotLlamaError(path, `architecture "llama"`, [
      `RoPE scaling of type ${
        JSON.stringify(scalingType)
      } (only Llama 3's rope_freqs is supported)`,
    ]);
  }
  const integer = (name: string, fallback?: number): number => {
    const v = value(name) ?? fallback;
    if (v === undefined) throw new ParamsError(path, `missing metadata "${name}"`);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw new ParamsError(path, `"${name}" must be a positive integer, got ${String(v)}`);
    }
    return v;
  };
  const number = (name: string, fallback: number): number => {
    const v = value(name) ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new ParamsError(path, `"${name}" must be a positive number, got ${String(v)}`);
    }
    return v;
  };
  const has = (name: string) => header.metadata.has(name);

  const dim = integer("llama.embedding_length");
  const nHeads = integer("llama.attention.head_count");
  const nKvHeads = integer("llama.attention.head_count_kv", nHeads);
  const headDim = integer("llama.rope.dimension_count", dim / nHeads);
  const embedding = header.tensors.find((t) => t.name === "token_embd.weight");
  const tokens = value("tokenizer.ggml.tokens");
  const vocabSize = has("llama.vocab_size")
    ? integer("llama.vocab_size")
    : Array.isArray(tokens)
    ? tokens.length
    : embedding?.shape[0];
  if (vocabSize === undefined) {
    throw new ParamsError(path, `no "llama.vocab_size", vocabulary or token_embd to size it`);
  }
  const ropeTheta = number("llama.rope.freq_base", 10000);
  const ropeScaling = ropeFreqs === undefined
    ? undefined
    : llama3ScalingOf(path, ropeFreqs, ropeTheta, headDim);
  const config: ModelConfig = {
    dim,
    nLayers: integer("llama.block_count"),
    nHeads,
    nKvHeads,
    headDim,
    hiddenDim: integer("llama.feed_forward_length"),
    vocabSize,
    normEps: number("llama.attention.layer_norm_rms_epsilon", 1e-5),
    ropeTheta,
    ropeScaling,
    tiedOutput: !header.tensors.some((t) => t.name === "output.weight"),
    trainedContext: has("llama.context_length") ? integer("llama.context_length") : undefined,
  };
  const orDefault = (name: string, fallback: string) => has(name) ? key(name) : fallback;
  return {
    config,
    provenance: {
      dim: key("llama.embedding_length"),
      nLayers: key("llama.block_count"),
      nHeads: key("llama.attention.head_count"),
      nKvHeads: orDefault("llama.attention.head_count_kv", "head_count (none given)"),
      headDim: orDefault("llama.rope.dimension_count", "embedding_length / head_count"),
      hiddenDim: key("llama.feed_forward_length"),
      vocabSize: has("llama.vocab_size")
        ? key("llama.vocab_size")
        : Array.isArray(tokens)
        ? "length of tokenizer.ggml.tokens"
        : "rows of token_embd.weight",
      normEps: orDefault("llama.attention.layer_norm_rms_epsilon", "default 1e-5"),
      ropeTheta: orDefault("llama.rope.freq_base", "default 10000"),
      ropeScaling: ropeFreqs === undefined ? "none" : "recovered from the rope_freqs tensor",
      tiedOutput: config.tiedOutput ? "no output.weight tensor" : "output.weight present",
      trainedContext: orDefault("llama.context_length", "not given"),
    },
  };
}

/**
 * The Llama 3 scaling whose divisors are `divisors`. Divisors are 1 for short wavelengths, the
 * factor for long ones, and between them `1 / ((1 - s) / factor + s)` with `s` linear in the
 * frequency, reaching 0 and 1 at the band's edges: the factor and that line fix all four
 * parameters (taking the low-frequency factor as 1; any other choice gives the same divisors).
 */
export function llama3ScalingOf(
  path: string,
  divisors: Float32Array,
  theta: number,
  headDim: number,
): RopeScaling {
  const fail = (detail: string) =>
    new ParamsError(
      path,
      `the rope_freqs tensor ${detail}, which Llama 3's RoPE scaling cannot give`,
    );
  if (divisors.length !== headDim / 2) {
    throw fail(`has ${divisors.length} values for ${headDim / 2} frequencies`);
  }
  const factor = Math.max(...divisors);
  if (!(factor >= 1) || divisors.some((d) => !(d >= 1))) throw fail("has divisors below 1");
  const frequencies = Array.from(divisors, (_, j) => theta ** (-2 * j / headDim));
  // Points inside the band: s = (1/d - 1/factor) / (1 - 1/factor) strictly between 0 and 1.
  const band = frequencies.flatMap((f, j) => {
    const s = (1 / divisors[j]! - 1 / factor) / (1 - 1 / factor);
    return s > 1e-4 && s < 1 - 1e-4 ? [{ x: f / (2 * Math.PI), s }] : [];
  });
  if (factor === 1) throw fail("divides no frequency");
  if (band.length < 2) throw fail("has fewer than two divisors between 1 and its largest");
  const first = band[0]!;
  const last = band[band.length - 1]!;
  // s = a * (1 / wavelength) + b, with a = context / (high - low) and b = -low / (high - low).
  const a = (last.s - first.s) / (last.x - first.x);
  const b = first.s - a * first.x;
  const highFreqFactor = Math.round((1 - 1 / b) * 1e6) / 1e6;
  const scaling: RopeScaling = {
    factor: Math.round(factor * 1e6) / 1e6,
    lowFreqFactor: 1,
    highFreqFactor,
    originalContextLength: Math.round(a * (highFreqFactor - 1)),
  };
  frequencies.forEach((f, j) => {
    const expected = llama3Divisor(f, scaling);
    if (Math.abs(expected - divisors[j]!) > DIVISOR_TOLERANCE * expected) {
      throw fail(
        `has divisor ${divisors[j]} at ${j} where the recovered scaling gives ${expected}`,
      );
    }
  });
  return scaling;
}

const LAYER_PARTS: Readonly<Record<string, string>> = {
  "attn_norm.weight": "attention_norm.weight",
  "attn_q.weight": "attention.wq.weight",
  "attn_k.weight": "attention.wk.weight",
  "attn_v.weight": "attention.wv.weight",
  "attn_output.weight": "attention.wo.weight",
  "ffn_norm.weight": "ffn_norm.weight",
  "ffn_gate.weight": "feed_forward.w1.weight",
  "ffn_down.weight": "feed_forward.w2.weight",
  "ffn_up.weight": "feed_forward.w3.weight",
};
const GLOBAL_NAMES: Readonly<Record<string, string>> = {
  "token_embd.weight": "tok_embeddings.weight",
  "output_norm.weight": "norm.weight",
  "output.weight": "output.weight",
};

/**
 * The Meta name of a GGUF Llama tensor, `null` for `rope_freqs` (read into the config), or
 * `undefined` for a name a Llama does not have.
 */
export function metaNameOfGguf(name: string): string | null | undefined {
  if (name === ROPE_FREQS) return null;
  const layer = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (layer !== null) {
    const part = LAYER_PARTS[layer[2]!];
    return part === undefined ? undefined : `layers.${layer[1]}.${part}`;
  }
  return GLOBAL_NAMES[name];
}

/** Whether a tensor list is GGUF's (its embedding is `token_embd`). */
export function hasGgufNames(tensors: readonly TensorInfo[]): boolean {
  return tensors.some((t) => t.name === "token_embd.weight");
}
