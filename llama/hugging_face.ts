/**
 * Hugging Face Llama checkpoints: `config.json` -> {@link ModelConfig}, and Hugging Face tensor
 * names -> Meta's. Hugging Face stores each head's q and k rows in rotate-half order (x[j] with
 * x[j + hd/2]); Meta stores adjacent pairs (x[2j], x[2j+1]), which is what the rest of the project
 * reads, so those rows are put back in pair order when read (see {@link MetaView}).
 *
 * @module
 */

import type { TensorInfo } from "../checkpoint/tensor_source.ts";
import { type Json, type ModelConfig, ParamsError, type RopeScaling } from "./config.ts";
import { NotLlamaError, type ResolvedConfig } from "./provenance.ts";

/** Architectures read as Llama: the same network under another name. */
const LLAMA_ARCHITECTURES = ["LlamaForCausalLM", "MistralForCausalLM"];

/** What sets known architectures apart from a Llama, for the error that refuses them. */
const KNOWN_DIFFERENCES: Readonly<Record<string, string>> = {
  Qwen2ForCausalLM: "biases on the q, k and v projections",
  Qwen3ForCausalLM: "RMSNorm on each head's queries and keys (qk-norm)",
  Qwen2MoeForCausalLM: "mixture-of-experts feed-forward layers, q/k/v biases",
  Qwen3MoeForCausalLM: "mixture-of-experts feed-forward layers, qk-norm",
  MixtralForCausalLM: "mixture-of-experts feed-forward layers",
  GemmaForCausalLM: "RMSNorm scaled by 1 + weight, scaled embeddings, GELU feed-forward",
  Gemma2ForCausalLM: "sliding-window layers, logit soft-capping, extra norms, GELU feed-forward",
  Gemma3ForCausalLM: "sliding-window layers, qk-norm, extra norms, GELU feed-forward",
  Phi3ForCausalLM: "fused qkv and gate/up projections",
  OlmoForCausalLM: "LayerNorm without weights",
  Olmo2ForCausalLM: "qk-norm and norms after attention and feed-forward",
  DeepseekV3ForCausalLM: "multi-head latent attention and mixture-of-experts layers",
};

/** The names of config.json's fields, as `config.json "<key>"`. */
function from(key: string): string {
  return `config.json "${key}"`;
}

/** What in a Llama-family config.json asks for something a Llama does not have. */
function llamaVariantDifferences(config: Json): string[] {
  const differences: string[] = [];
  if (config.attention_bias === true) differences.push(`attention biases ("attention_bias": true)`);
  if (config.mlp_bias === true) differences.push(`feed-forward biases ("mlp_bias": true)`);
  const act = config.hidden_act ?? "silu";
  if (act !== "silu") differences.push(`activation ${JSON.stringify(act)} instead of SiLU`);
  const sliding = config.sliding_window;
  if (sliding !== undefined && sliding !== null && config.use_sliding_window !== false) {
    differences.push(`sliding-window attention ("sliding_window": ${JSON.stringify(sliding)})`);
  }
  const experts = config.num_local_experts ?? config.num_experts;
  if (typeof experts === "number" && experts > 1) {
    differences.push(`mixture-of-experts feed-forward layers (${experts} experts)`);
  }
  return differences;
}

/** Throws {@link NotLlamaError} unless config.json describes a Llama the exporter can build. */
export function checkLlamaArchitecture(path: string, config: Json): void {
  const architectures = Array.isArray(config.architectures) ? config.architectures : [];
  const named = String(architectures[0] ?? config.model_type ?? "an unnamed architecture");
  const isLlama = architectures.some((a) => LLAMA_ARCHITECTURES.includes(String(a))) ||
    (architectures.length === 0 && ["llama", "mistral"].includes(String(config.model_type)));
  if (!isLlama) {
    const known = KNOWN_DIFFERENCES[named];
    throw new NotLlamaError(path, named, [
      known ?? `only ${LLAMA_ARCHITECTURES.join(" and ")} are supported`,
    ]);
  }
  const differences = llamaVariantDifferences(config);
  if (differences.length > 0) throw new NotLlamaError(path, named, differences);
}

function positiveInteger(path: string, config: Json, key: string, fallback?: number): number {
  const value = config[key] ?? fallback;
  if (value === undefined) throw new ParamsError(path, `missing field "${key}"`);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new ParamsError(
      path,
      `"${key}" must be a positive integer, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function positiveNumber(path: string, config: Json, key: string, fallback: number): number {
  const value = config[key] ?? fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new ParamsError(path, `"${key}" must be a positive number, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `rope_scaling` of type llama3, with all four of its fields; null or absent for none. */
function ropeScaling(path: string, config: Json): RopeScaling | undefined {
  const scaling = config.rope_scaling;
  if (scaling === undefined || scaling === null) return undefined;
  if (typeof scaling !== "object" || Array.isArray(scaling)) {
    throw new ParamsError(path, `"rope_scaling" must be an object or null`);
  }
  const s = scaling as Json;
  const type = s.rope_type ?? s.type;
  if (type === "default") return undefined;
  if (type !== "llama3") {
    throw new NotLlamaError(path, "this Llama", [
      `RoPE scaling of type ${JSON.stringify(type)} (only "llama3" is supported)`,
    ]);
  }
  const field = (key: string) => {
    const value = s[key];
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw new ParamsError(
        path,
        `"rope_scaling.${key}" must be a positive number, got ${JSON.stringify(value)}`,
      );
    }
    return value;
  };
  return {
    factor: field("factor"),
    lowFreqFactor: field("low_freq_factor"),
    highFreqFactor: field("high_freq_factor"),
    originalContextLength: field("original_max_position_embeddings"),
  };
}

/**
 * Resolves a Hugging Face Llama `config.json`. Defaults are those of transformers' LlamaConfig
 * (`rms_norm_eps` 1e-6, `rope_theta` 10000, untied output).
 *
 * @param path the config.json, for messages
 * @param config its parsed content
 * @throws {NotLlamaError} when it describes another architecture
 * @throws {ParamsError} when a field is missing or makes no sense
 */
export function resolveHuggingFaceConfig(path: string, config: Json): ResolvedConfig {
  checkLlamaArchitecture(path, config);
  const dim = positiveInteger(path, config, "hidden_size");
  const nHeads = positiveInteger(path, config, "num_attention_heads");
  const nKvHeads = positiveInteger(path, config, "num_key_value_heads", nHeads);
  if (nHeads % nKvHeads !== 0) {
    throw new ParamsError(
      path,
      `num_attention_heads (${nHeads}) is not a multiple of num_key_value_heads (${nKvHeads})`,
    );
  }
  const hasHeadDim = config.head_dim !== undefined && config.head_dim !== null;
  if (!hasHeadDim && dim % nHeads !== 0) {
    throw new ParamsError(path, `hidden_size (${dim}) is not a multiple of num_attention_heads`);
  }
  const headDim = hasHeadDim ? positiveInteger(path, config, "head_dim") : dim / nHeads;
  if (headDim % 2 !== 0) throw new ParamsError(path, `head dimension ${headDim} must be even`);
  const scaling = ropeScaling(path, config);
  const tied = config.tie_word_embeddings ?? false;
  if (typeof tied !== "boolean") {
    throw new ParamsError(path, `"tie_word_embeddings" must be true or false`);
  }
  const resolved: ModelConfig = {
    dim,
    nLayers: positiveInteger(path, config, "num_hidden_layers"),
    nHeads,
    nKvHeads,
    headDim,
    hiddenDim: positiveInteger(path, config, "intermediate_size"),
    vocabSize: positiveInteger(path, config, "vocab_size"),
    normEps: positiveNumber(path, config, "rms_norm_eps", 1e-6),
    ropeTheta: positiveNumber(path, config, "rope_theta", 10000),
    ropeScaling: scaling,
    tiedOutput: tied,
    trainedContext: config.max_position_embeddings == null
      ? undefined
      : positiveInteger(path, config, "max_position_embeddings"),
  };
  const orDefault = (key: string, fallback: string) =>
    config[key] === undefined || config[key] === null ? fallback : from(key);
  return {
    config: resolved,
    provenance: {
      dim: from("hidden_size"),
      nLayers: from("num_hidden_layers"),
      nHeads: from("num_attention_heads"),
      nKvHeads: orDefault("num_key_value_heads", "num_attention_heads (none given)"),
      headDim: orDefault("head_dim", "hidden_size / num_attention_heads"),
      hiddenDim: from("intermediate_size"),
      vocabSize: from("vocab_size"),
      normEps: orDefault("rms_norm_eps", "default 1e-6"),
      ropeTheta: orDefault("rope_theta", "default 10000"),
      ropeScaling: scaling === undefined ? "none" : from("rope_scaling"),
      tiedOutput: orDefault("tie_word_embeddings", "default false"),
      trainedContext: orDefault("max_position_embeddings", "not given"),
    },
  };
}

const LAYER_PARTS: Readonly<Record<string, string>> = {
  "input_layernorm.weight": "attention_norm.weight",
  "self_attn.q_proj.weight": "attention.wq.weight",
  "self_attn.k_proj.weight": "attention.wk.weight",
  "self_attn.v_proj.weight": "attention.wv.weight",
  "self_attn.o_proj.weight": "attention.wo.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  "mlp.gate_proj.weight": "feed_forward.w1.weight",
  "mlp.down_proj.weight": "feed_forward.w2.weight",
  "mlp.up_proj.weight": "feed_forward.w3.weight",
};
const GLOBAL_NAMES: Readonly<Record<string, string>> = {
  "model.embed_tokens.weight": "tok_embeddings.weight",
  "model.norm.weight": "norm.weight",
  "lm_head.weight": "output.weight",
};
/** Tensors some exports carry that hold nothing the model needs (RoPE tables it recomputes). */
const IGNORED = /(^|\.)rotary_emb\.inv_freq$/;

/**
 * The Meta name of a Hugging Face Llama tensor, `null` for tensors the model does not need, or
 * `undefined` for a name a Llama does not have.
 */
export function metaNameOfHuggingFace(name: string): string | null | undefined {
  if (IGNORED.test(name)) return null;
  const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (layer !== null) {
    const part = LAYER_PARTS[layer[2]!];
    return part === undefined ? undefined : `layers.${layer[1]}.${part}`;
  }
  return GLOBAL_NAMES[name];
}

/** Whether a Hugging Face name holds rotate-half q or k rows. */
export function isRotateHalfTensor(name: string): boolean {
  return /\.self_attn\.[qk]_proj\.weight$/.test(name);
}

/** Whether a tensor list uses Hugging Face's names (its embedding is `model.embed_tokens`). */
export function hasHuggingFaceNames(tensors: readonly TensorInfo[]): boolean {
  return tensors.some((t) => t.name === "model.embed_tokens.weight");
}
