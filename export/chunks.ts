/**
 * Layer chunks: the transformer blocks split over several Core ML programs, each within what one
 * Neural Engine program is reported to hold (docs/coreml.md, "Neural Engine limits"). Chunks are
 * contiguous runs of layers joined by the hidden state, as the pieces of a graph break are.
 *
 * @module
 */

import type { ModelConfig } from "../llama/config.ts";
import type { StorageDType } from "../checkpoint/tensor_source.ts";
import {
  type ChunkLimits,
  ExportOptionsError,
  linearShapes,
  type ResolvedExportOptions,
} from "./options.ts";
import { linearChoice, storageBytes } from "./weight_storage.ts";

/** Layers `[firstLayer, endLayer)` of one chunk. */
export interface LayerRange {
  readonly firstLayer: number;
  readonly endLayer: number;
}

/**
 * Weight bytes of one transformer layer: its seven linears and two norms, each linear stored as
 * `options` say for its checkpoint type (`typeOf`; it matters only for `keep`).
 */
export function layerWeightBytes(
  config: ModelConfig,
  options: ResolvedExportOptions,
  typeOf: (tensor: string) => StorageDType,
): number {
  const perLayer = linearShapes({ ...config, nLayers: 1 }).slice(0, -1);
  const norms = 2 * config.dim * (options.dtype === "fp16" ? 2 : 4);
  return perLayer.reduce((sum, [name, out, input]) => {
    const { storage } = linearChoice(options.linearQuantize, typeOf(name), options.lutGroupSize);
    return sum + storageBytes(storage, out, input, options.dtype);
  }, norms);
}

/** The most layers of `layerBytes` each that one chunk may hold within `limits`. */
function layersPerChunk(layerBytes: number, limits: ChunkLimits): number {
  const layers = Math.min(limits.maxLayers, Math.floor(limits.maxWeightBytes / layerBytes));
  if (layers < 1) {
    throw new ExportOptionsError(
      `one layer holds ${layerBytes} bytes of weights, more than a chunk may hold ` +
        `(${limits.maxWeightBytes} bytes): raise the chunk limit or quantize the weights`,
    );
  }
  return layers;
}

/**
 * Splits `nLayers` layers of `layerBytes` each into chunks: `numChunks` as even as possible when
 * given (limits are then the caller's business), else the fewest chunks that keep each within
 * `limits`. Refuses a count or limits that cannot be met, before anything is written.
 */
export function chunkLayers(
  nLayers: number,
  layerBytes: number,
  limits: ChunkLimits,
  numChunks?: number,
): LayerRange[] {
  const count = numChunks ?? Math.ceil(nLayers / layersPerChunk(layerBytes, limits));
  if (!Number.isSafeInteger(count) || count < 1 || count > nLayers) {
    throw new ExportOptionsError(
      `num_chunks must be between 1 and the model's ${nLayers} layers, got ${count}`,
    );
  }
  // Even chunks, the larger ones first: every chunk has floor or ceil of nLayers / count layers.
  const ranges: LayerRange[] = [];
  let firstLayer = 0;
  for (let chunk = 0; chunk < count; chunk++) {
    const size = Math.floor(nLayers / count) + (chunk < nLayers % count ? 1 : 0);
    ranges.push({ firstLayer, endLayer: firstLayer + size });
    firstLayer += size;
  }
  return ranges;
}
