/**
 * What every part of the graph needs besides the function being built: the weights, the export
 * options and a way to report progress.
 *
 * @module
 */

import type { ModelConfig } from "../../llama/config.ts";
import { storageRounding } from "../chunk_job.ts";
import type { QuantizePool } from "../quantize_pool.ts";
import type { ResolvedExportOptions } from "../options.ts";
import type { StorageChoice } from "../weight_storage.ts";
import type { WeightReader } from "./weight_reader.ts";

/** Shared state of one export. */
export interface ExportContext {
  readonly config: ModelConfig;
  readonly options: ResolvedExportOptions;
  readonly weights: WeightReader;
  /** The threads that quantize and palettize the weights' rows. */
  readonly pool: QuantizePool;
  /** Called after each weight has been written, with its checkpoint name. */
  readonly weightWritten: (name: string) => void;
  /** Called with the storage chosen for each part of a matrix, with its checkpoint name. */
  readonly storageChosen: (name: string, choice: StorageChoice) => void;
  /**
   * Called once a weight has been stored, with its checkpoint name, what it is (a linear weight,
   * or the embedding table, which a tied head stores again as a linear) and its relative
   * reconstruction error. Each function of a piece reports the weights it writes.
   */
  readonly errorMeasured: (name: string, use: WeightUse, relativeError: number) => void;
}

/** What a stored weight is used as. */
export type WeightUse = "linear" | "embedding";

/** Rounds a quantization scale, or a float weight, to the float type it is stored in. */
export function scaleRounding(options: ResolvedExportOptions): (x: number) => number {
  return storageRounding(options.dtype);
}
