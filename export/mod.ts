/**
 * The exporter's supporting types, for tools that build export options or read an export's
 * summary: how linear and embedding weights are quantized (with {@link LINEAR_QUANTIZATIONS}, the
 * list of the linear ones), how each tensor was stored and how much storing it lost, and the
 * progress an export reports.
 * Exporting goes through the top-level entry point's `exportModel`.
 *
 * @example Export with int4 weights per block of 32, then list how each tensor was stored
 * ```ts ignore
 * import { exportModel } from "@llamane/llamane";
 * import type { LinearQuantization, WeightStorage } from "@llamane/llamane/export";
 *
 * const linearQuantize: LinearQuantization = "b4w";
 * const summary = await exportModel({ checkpoint: "SmolLM2-135M/", linearQuantize });
 * for (const { tensor, choice } of summary.storage) {
 *   const storage: WeightStorage = choice.storage;
 *   console.log(tensor, storage.kind, choice.fallback ?? "");
 * }
 * ```
 *
 * @module
 */

export type { EmbeddingQuantization, ExportProgress } from "./options.ts";
export { LINEAR_QUANTIZATIONS, type LinearQuantization } from "../bundle/manifest.ts";
export type { QuantBits } from "./quantize.ts";
export type { PaletteBits } from "./palettize.ts";
export type { StorageChoice, TensorStorage, WeightStorage } from "./weight_storage.ts";
export type { ReconstructionError, TensorError } from "./reconstruction_error.ts";
