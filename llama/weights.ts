/**
 * The checkpoint tensors a Llama needs, by Meta name, and the check that a checkpoint has them
 * with the shapes its config implies.
 *
 * @module
 */

import type { TensorInfo } from "../checkpoint/tensor_source.ts";
import type { ModelConfig } from "./config.ts";

/** The per-layer tensor names, in the order a forward pass uses them. */
export function layerTensorNames(
  layer: number,
): Readonly<
  Record<"attentionNorm" | "wq" | "wk" | "wv" | "wo" | "ffnNorm" | "w1" | "w2" | "w3", string>
> {
  const prefix = `layers.${layer}`;
  return {
    attentionNorm: `${prefix}.attention_norm.weight`,
    wq: `${prefix}.attention.wq.weight`,
    wk: `${prefix}.attention.wk.weight`,
    wv: `${prefix}.attention.wv.weight`,
    wo: `${prefix}.attention.wo.weight`,
    ffnNorm: `${prefix}.ffn_norm.weight`,
    w1: `${prefix}.feed_forward.w1.weight`,
    w2: `${prefix}.feed_forward.w2.weight`,
    w3: `${prefix}.feed_forward.w3.weight`,
  } as const;
}

/** Names of the tensors outside the layers. */
export const EMBEDDING = "tok_embeddings.weight";
/** Final RMSNorm weight. */
export const FINAL_NORM = "norm.weight";
/** Output projection (absent when tied to the embedding). */
export const OUTPUT = "output.weight";

/** Every tensor the config needs, with its expected shape, in checkpoint order. */
export function expectedTensors(config: ModelConfig): Map<string, readonly number[]> {
  const { dim, nHeads, nKvHeads, headDim, hiddenDim, vocabSize } = config;
  const shapes = new Map<string, readonly number[]>([[EMBEDDING, [vocabSize, dim]]]);
  for (let layer = 0; layer < config.nLayers; layer++) {
    const n = layerTensorNames(layer);
    shapes.set(n.attentionNorm, [dim]);
    shapes.set(n.wq, [nHeads * headDim, dim]);
    shapes.set(n.wk, [nKvHeads * headDim, dim]);
    shapes.set(n.wv, [nKvHeads * headDim, dim]);
    shapes.set(n.wo, [dim, nHeads * headDim]);
    shapes.set(n.ffnNorm, [dim]);
    shapes.set(n.w1, [hiddenDim, dim]);
    shapes.set(n.w2, [dim, hiddenDim]);
    shapes.set(n.w3, [hiddenDim, dim]);
  }
  shapes.set(FINAL_NORM, [dim]);
  if (!config.tiedOutput) shapes.set(OUTPUT, [vocabSize, dim]);
  return shapes;
}

/** A checkpoint that lacks tensors the config needs, or has them with other shapes. */
export class CheckpointMismatchError extends RangeError {
  /** One line per missing or misshapen tensor. */
  readonly mismatches: readonly string[];

  /** Builds a message naming the checkpoint and listing the first 20 mismatches. */
  constructor(path: string, mismatches: readonly string[]) {
    const shown = mismatches.slice(0, 20);
    const more = mismatches.length > shown.length
      ? `\n  ... and ${mismatches.length - shown.length} more`
      : "";
    super(
      `Cannot use checkpoint "${path}" with these params: ${mismatches.length} tensor(s) do not match\n  ` +
        shown.join("\n  ") + more,
    );
    this.name = "CheckpointMismatchError";
    this.mismatches = mismatches;
  }
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * Checks that every tensor the config needs is present with the expected shape, and throws one
 * {@link CheckpointMismatchError} listing every problem. Extra tensors (e.g. Llama 2's
 * `rope.freqs`) are ignored.
 */
export function validateTensors(
  path: string,
  config: ModelConfig,
  tensors: readonly TensorInfo[],
): void {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const mismatches: string[] = [];
  for (const [name, shape] of expectedTensors(config)) {
    const actual = byName.get(name);
    if (actual === undefined) {
      mismatches.push(`"${name}": missing, expected shape ${formatShape(shape)}`);
    } else if (
      actual.shape.length !== shape.length || actual.shape.some((d, i) => d !== shape[i])
    ) {
      mismatches.push(
        `"${name}": expected shape ${formatShape(shape)}, got ${formatShape(actual.shape)}`,
      );
    }
  }
  if (mismatches.length > 0) throw new CheckpointMismatchError(path, mismatches);
}
