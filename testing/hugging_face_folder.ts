/**
 * A Hugging Face model folder made from a Meta-layout checkpoint, for tests: Hugging Face names,
 * q/k rows in rotate-half order, config.json, one model.safetensors or shards with their index.
 * The real-model fixture of scripts/fixtures/smollm2/ is made the same way by Python.
 *
 * @module
 */

import { openCheckpoint } from "../checkpoint/mod.ts";
import type { TinyLlamaParams } from "./tiny_llama.ts";
import { type Fp32Tensor, writeSafetensors } from "./tiny_llama.ts";
import { ffnHiddenDim } from "../llama/config.ts";
import { ropeSourceRow } from "../export/graph/weight_reader.ts";

const LAYER_PARTS: Readonly<Record<string, string>> = {
  "attention_norm.weight": "input_layernorm.weight",
  "attention.wq.weight": "self_attn.q_proj.weight",
  "attention.wk.weight": "self_attn.k_proj.weight",
  "attention.wv.weight": "self_attn.v_proj.weight",
  "attention.wo.weight": "self_attn.o_proj.weight",
  "ffn_norm.weight": "post_attention_layernorm.weight",
  "feed_forward.w1.weight": "mlp.gate_proj.weight",
  "feed_forward.w2.weight": "mlp.down_proj.weight",
  "feed_forward.w3.weight": "mlp.up_proj.weight",
};
const GLOBAL_NAMES: Readonly<Record<string, string>> = {
  "tok_embeddings.weight": "model.embed_tokens.weight",
  "norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
};

function huggingFaceName(meta: string): string {
  const layer = /^layers\.(\d+)\.(.+)$/.exec(meta);
  return layer === null
    ? GLOBAL_NAMES[meta]!
    : `model.layers.${layer[1]}.${LAYER_PARTS[layer[2]!]}`;
}

/** Meta's adjacent-pair rows of each head, reordered to rotate halves (as the exporter does). */
export function toRotateHalf(values: Float32Array, rows: number, headDim: number): Float32Array {
  const columns = values.length / rows;
  const out = new Float32Array(values.length);
  for (let row = 0; row < rows; row++) {
    const source = ropeSourceRow(row, headDim);
    out.set(values.subarray(source * columns, (source + 1) * columns), row * columns);
  }
  return out;
}

/** The tensors of a Meta checkpoint under Hugging Face names and q/k order. */
export async function huggingFaceTensors(
  checkpoint: string,
  headDim: number,
): Promise<Fp32Tensor[]> {
  using source = await openCheckpoint(checkpoint);
  const tensors: Fp32Tensor[] = [];
  for (const { name, shape } of source.list()) {
    let values = await source.readFloat32(name);
    if (/attention\.w[qk]\.weight$/.test(name)) values = toRotateHalf(values, shape[0]!, headDim);
    tensors.push({ name: huggingFaceName(name), shape, values });
  }
  return tensors;
}

/** config.json of a tiny model's params. */
export function huggingFaceConfig(params: TinyLlamaParams, tied: boolean): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: params.dim,
    num_hidden_layers: params.n_layers,
    num_attention_heads: params.n_heads,
    num_key_value_heads: params.n_kv_heads,
    intermediate_size: ffnHiddenDim(params.dim, params.multiple_of),
    rms_norm_eps: params.norm_eps ?? 1e-5,
    rope_theta: params.rope_theta ?? 10000,
    vocab_size: params.vocab_size,
    max_position_embeddings: 256,
    tie_word_embeddings: tied,
  };
}

/**
 * Writes a Hugging Face folder: config.json and the tensors, in `shards` files with an index when
 * more than one.
 */
export async function writeHuggingFaceFolder(
  dir: string,
  config: Record<string, unknown>,
  tensors: readonly Fp32Tensor[],
  shards = 1,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  if (shards === 1) return writeSafetensors(`${dir}/model.safetensors`, tensors);
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < shards; i++) {
    const file = `model-${String(i + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}` +
      ".safetensors";
    const part = tensors.slice(
      Math.round((i * tensors.length) / shards),
      Math.round(((i + 1) * tensors.length) / shards),
    );
    await writeSafetensors(`${dir}/${file}`, part);
    for (const { name } of part) weightMap[name] = file;
  }
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
}
