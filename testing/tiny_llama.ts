/**
 * A random-weight Meta-layout Llama written to a temporary directory as safetensors + params.json,
 * for tests about structure (shapes, pieces, options, errors) that need a checkpoint of a chosen
 * shape but no reference numbers. Numerics are checked against the PyTorch fixtures instead.
 *
 * @module
 */

import { ffnHiddenDim } from "../llama/config.ts";
import { elementCount } from "../shape.ts";

/** The shape of the tiny model; `params.json` gets these fields. */
export interface TinyLlamaParams {
  readonly dim: number;
  readonly n_layers: number;
  readonly n_heads: number;
  readonly n_kv_heads: number;
  readonly vocab_size: number;
  readonly multiple_of: number;
  readonly norm_eps?: number;
  readonly rope_theta?: number;
}

/** A small GQA model with two layers. */
export const TINY_PARAMS: TinyLlamaParams = {
  dim: 64,
  n_layers: 2,
  n_heads: 4,
  n_kv_heads: 2,
  vocab_size: 96,
  multiple_of: 32,
};

/** Paths of a written tiny model. */
export interface TinyLlama {
  readonly dir: string;
  readonly checkpoint: string;
  readonly params: string;
}

function tensorShapes(p: TinyLlamaParams, tied: boolean): [string, number[]][] {
  const headDim = p.dim / p.n_heads;
  const hidden = ffnHiddenDim(p.dim, p.multiple_of);
  const shapes: [string, number[]][] = [["tok_embeddings.weight", [p.vocab_size, p.dim]]];
  for (let i = 0; i < p.n_layers; i++) {
    shapes.push(
      [`layers.${i}.attention_norm.weight`, [p.dim]],
      [`layers.${i}.attention.wq.weight`, [p.n_heads * headDim, p.dim]],
      [`layers.${i}.attention.wk.weight`, [p.n_kv_heads * headDim, p.dim]],
      [`layers.${i}.attention.wv.weight`, [p.n_kv_heads * headDim, p.dim]],
      [`layers.${i}.attention.wo.weight`, [p.dim, p.n_heads * headDim]],
      [`layers.${i}.ffn_norm.weight`, [p.dim]],
      [`layers.${i}.feed_forward.w1.weight`, [hidden, p.dim]],
      [`layers.${i}.feed_forward.w2.weight`, [p.dim, hidden]],
      [`layers.${i}.feed_forward.w3.weight`, [hidden, p.dim]],
    );
  }
  shapes.push(["norm.weight", [p.dim]]);
  if (!tied) shapes.push(["output.weight", [p.vocab_size, p.dim]]);
  return shapes;
}

/** Writes a tiny model with deterministic pseudo-random weights (norm weights near 1). */
export async function writeTinyLlama(
  params: TinyLlamaParams = TINY_PARAMS,
  options: { tied?: boolean; seed?: number } = {},
): Promise<TinyLlama> {
  const dir = await Deno.makeTempDir({ prefix: "llamane-tiny-" });
  let state = options.seed ?? 1;
  const random = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const tensors = tensorShapes(params, options.tied ?? false).map(([name, shape]) => {
    const values = Float32Array.from(
      { length: elementCount(shape) },
      () => (shape.length === 1 ? 1 + 0.2 * random() : 0.4 * random()),
    );
    return { name, shape, values };
  });
  const checkpoint = `${dir}/model.safetensors`;
  const paramsPath = `${dir}/params.json`;
  await writeSafetensors(checkpoint, tensors);
  await Deno.writeTextFile(paramsPath, JSON.stringify(params));
  return { dir, checkpoint, params: paramsPath };
}

/** One fp32 tensor to write. */
export interface Fp32Tensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

/** Writes fp32 tensors, in order, as a safetensors file. */
export async function writeSafetensors(
  path: string,
  tensors: readonly Fp32Tensor[],
): Promise<void> {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const { name, shape, values } of tensors) {
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + values.byteLength] };
    offset += values.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const file = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(file.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  file.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const { values } of tensors) {
    file.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), at);
    at += values.byteLength;
  }
  await Deno.writeFile(path, file);
}
