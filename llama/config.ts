/**
 * `params.json` -> {@link ModelConfig}: the one place where Meta's field names and quirks
 * (defaults, `vocab_size: -1`, the FFN hidden-size rule, tied output, the unrecorded RoPE scale
 * factor) become a complete, validated description of the network's shape.
 *
 * @module
 */

import type { TensorInfo } from "../checkpoint/tensor_source.ts";
import { JsonSyntaxError, parseJson } from "../files/json.ts";
import { dimensionProblem, type LimitedDimension } from "./limits.ts";

/** A `params.json` that is not valid JSON or whose fields are missing or make no sense. */
export class ParamsError extends SyntaxError {
  /** The params.json path (or a label when parsed from memory). */
  readonly path: string;

  /** Builds the message `Cannot read params "<path>": <detail>`. */
  constructor(path: string, detail: string) {
    super(`Cannot read params "${path}": ${detail}`);
    this.name = "ParamsError";
    this.path = path;
  }
}

/** Llama 3.1 RoPE frequency scaling (`use_scaled_rope`), with every constant explicit. */
export interface RopeScaling {
  /** Divisor for low frequencies: 8 for Llama 3.1, 32 for Llama 3.2 1B/3B. */
  readonly factor: number;
  /**
   * Wavelengths above `originalContextLength / lowFreqFactor` are divided by `factor` (1 in
   * Llama 3.1 and 3.2).
   */
  readonly lowFreqFactor: number;
  /**
   * Wavelengths below `originalContextLength / highFreqFactor` are kept as they are (4 in Llama
   * 3.1 and 3.2).
   */
  readonly highFreqFactor: number;
  /** The context length the base model was trained with. */
  readonly originalContextLength: number;
}

/** The shape of a Llama network, fully resolved: every field has its final value. */
export interface ModelConfig {
  /** Model width D. */
  readonly dim: number;
  /** Transformer blocks. */
  readonly nLayers: number;
  /** Query heads H. */
  readonly nHeads: number;
  /** Key/value heads Hkv (H for plain multi-head attention, fewer for grouped-query attention). */
  readonly nKvHeads: number;
  /** Per-head width hd. */
  readonly headDim: number;
  /** FFN hidden size F. */
  readonly hiddenDim: number;
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** Epsilon added to the mean square in RMSNorm. @default 1e-5 */
  readonly normEps: number;
  /** RoPE base: frequencies are `ropeTheta^(-2j/hd)`. @default 10000 */
  readonly ropeTheta: number;
  /** Present when `use_scaled_rope` is set. */
  readonly ropeScaling: RopeScaling | undefined;
  /** True when the checkpoint has no `output.weight` and the head reuses `tok_embeddings.weight`. */
  readonly tiedOutput: boolean;
  /** Positions the model was trained on, when the checkpoint says. */
  readonly trainedContext: number | undefined;
}

/** Options that params.json cannot express. */
export interface ConfigOptions {
  /**
   * RoPE scale factor for `use_scaled_rope` models. params.json does not record it: Llama 3.1
   * uses 8, Llama 3.2 1B/3B use 32.
   * @default DEFAULT_ROPE_SCALE_FACTOR
   */
  readonly ropeScaleFactor?: number;
}

/** The RoPE scale factor assumed when none is given. */
export const DEFAULT_ROPE_SCALE_FACTOR = 8;

/** The Meta FFN hidden-size rule (docs/reference/static-llm.md section 1). */
export function ffnHiddenDim(dim: number, multipleOf: number, ffnDimMultiplier?: number): number {
  let hidden = Math.trunc((2 * 4 * dim) / 3);
  if (ffnDimMultiplier !== undefined) hidden = Math.trunc(ffnDimMultiplier * hidden);
  return multipleOf * Math.ceil(hidden / multipleOf);
}

/** A parsed JSON object, such as params.json. */
export type Json = Record<string, unknown>;

function field(params: Json, name: string): unknown {
  return Object.hasOwn(params, name) ? params[name] : undefined;
}

function positiveInteger(path: string, params: Json, name: string, fallback?: number): number {
  const value = field(params, name) ?? fallback;
  if (value === undefined) throw new ParamsError(path, `missing field "${name}"`);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new ParamsError(
      path,
      `"${name}" must be a positive integer, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** A positive integer field that sizes the model, within the limits of `limits.ts`. */
function dimension(
  path: string,
  params: Json,
  name: string,
  limit: LimitedDimension,
  fallback?: number,
): number {
  const value = positiveInteger(path, params, name, fallback);
  const problem = dimensionProblem(limit, value);
  if (problem !== undefined) throw new ParamsError(path, `"${name}" ${problem}`);
  return value;
}

function positiveNumber(path: string, params: Json, name: string, fallback?: number): number {
  const value = field(params, name) ?? fallback;
  if (value === undefined) throw new ParamsError(path, `missing field "${name}"`);
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new ParamsError(
      path,
      `"${name}" must be a positive number, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function requireThat(path: string, condition: boolean, detail: string): void {
  if (!condition) throw new ParamsError(path, detail);
}

/** Parses params.json text into a plain object, or throws {@link ParamsError}. */
export function parseParamsJson(path: string, text: string): Json {
  let params: unknown;
  try {
    params = parseJson(text);
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    throw new ParamsError(path, `invalid JSON: the file ${error.message}`);
  }
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new ParamsError(path, "expected a JSON object");
  }
  return params as Json;
}

/**
 * Resolves a Meta `params.json` object against the checkpoint's tensor list: the vocabulary comes
 * from the embedding when params say `-1`, and the output is tied when `output.weight` is absent.
 *
 * @param path where the params came from, for error messages
 * @param params the parsed params.json
 * @param tensors the checkpoint's tensors (only names and shapes are used)
 */
export function resolveConfig(
  path: string,
  params: Json,
  tensors: readonly TensorInfo[],
  options: ConfigOptions = {},
): ModelConfig {
  const dim = dimension(path, params, "dim", "dim");
  const nLayers = dimension(path, params, "n_layers", "nLayers");
  const nHeads = dimension(path, params, "n_heads", "nHeads");
  const nKvHeads = dimension(path, params, "n_kv_heads", "nKvHeads", nHeads);
  requireThat(
    path,
    nHeads % nKvHeads === 0,
    `n_heads (${nHeads}) is not a multiple of n_kv_heads (${nKvHeads})`,
  );

  const explicitHeadDim = field(params, "head_dim");
  if (explicitHeadDim === undefined) {
    requireThat(path, dim % nHeads === 0, `dim (${dim}) is not a multiple of n_heads (${nHeads})`);
  }
  const headDim = dimension(path, params, "head_dim", "headDim", dim / nHeads);
  requireThat(path, headDim % 2 === 0, `head dimension ${headDim} must be even for RoPE`);

  const multipleOf = positiveInteger(path, params, "multiple_of", 256);
  // Some exports write `"ffn_dim_multiplier": null` for "none".
  const multiplier = field(params, "ffn_dim_multiplier") == null
    ? undefined
    : positiveNumber(path, params, "ffn_dim_multiplier");
  const hiddenDim = field(params, "hidden_dim") === undefined
    ? ffnHiddenDim(dim, multipleOf, multiplier)
    : positiveInteger(path, params, "hidden_dim");
  const hiddenProblem = dimensionProblem("hiddenDim", hiddenDim);
  if (hiddenProblem !== undefined) {
    throw new ParamsError(path, `the FFN hidden size ${hiddenProblem}`);
  }

  const embedding = tensors.find((t) => t.name === "tok_embeddings.weight");
  const declaredVocab = field(params, "vocab_size");
  let vocabSize: number;
  if (declaredVocab === -1 || declaredVocab === undefined) {
    requireThat(
      path,
      embedding !== undefined && embedding.shape.length === 2,
      `vocab_size is ${JSON.stringify(declaredVocab ?? "missing")} and the checkpoint has no 2-D ` +
        `"tok_embeddings.weight" to take it from`,
    );
    vocabSize = embedding!.shape[0]!;
  } else {
    vocabSize = positiveInteger(path, params, "vocab_size");
  }
  const vocabProblem = dimensionProblem("vocabSize", vocabSize);
  if (vocabProblem !== undefined) {
    throw new ParamsError(path, `the vocabulary size ${vocabProblem}`);
  }

  const useScaledRope = field(params, "use_scaled_rope") ?? false;
  requireThat(path, typeof useScaledRope === "boolean", `"use_scaled_rope" must be true or false`);
  const factor = options.ropeScaleFactor ?? DEFAULT_ROPE_SCALE_FACTOR;
  if (!(Number.isFinite(factor) && factor >= 1)) {
    throw new RangeError(`Invalid RoPE scale factor: expected a number >= 1, got ${factor}`);
  }
  const ropeScaling = useScaledRope
    ? { factor, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 8192 }
    : undefined;

  return {
    dim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    hiddenDim,
    vocabSize,
    normEps: positiveNumber(path, params, "norm_eps", 1e-5),
    ropeTheta: positiveNumber(path, params, "rope_theta", 10000),
    ropeScaling,
    tiedOutput: !tensors.some((t) => t.name === "output.weight"),
    // Meta's ModelArgs name; its released params.json files leave it out.
    trainedContext: field(params, "max_seq_len") === undefined
      ? undefined
      : positiveInteger(path, params, "max_seq_len"),
  };
}

/** Parameter count of a model with this config (the tied head counted once). */
export function parameterCount(config: ModelConfig): number {
  const { dim, nHeads, nKvHeads, headDim, hiddenDim, vocabSize, nLayers } = config;
  const attention = dim * nHeads * headDim * 2 + dim * nKvHeads * headDim * 2;
  const ffn = 3 * dim * hiddenDim;
  const perLayer = attention + ffn + 2 * dim;
  const embeddings = vocabSize * dim * (config.tiedOutput ? 1 : 2);
  return nLayers * perLayer + embeddings + dim;
}
