/**
 * The Llama model itself: its config, the tensors it needs, RoPE tables, and the eager fp32
 * reference forward.
 *
 * @module
 */

export {
  type ConfigOptions,
  DEFAULT_ROPE_SCALE_FACTOR,
  ffnHiddenDim,
  type ModelConfig,
  parameterCount,
  ParamsError,
  type RopeScaling,
} from "./config.ts";
export {
  CheckpointMismatchError,
  EMBEDDING,
  expectedTensors,
  FINAL_NORM,
  layerTensorNames,
  OUTPUT,
  validateTensors,
} from "./weights.ts";
export { ropeFrequencies, type RopeTable, ropeTable } from "./rope.ts";
export { EagerLlama } from "./forward.ts";
export { type ModelPaths, type OpenedModel, openModel } from "./open.ts";
export type { RowRange, StorageDType, TensorInfo, TensorSource } from "../checkpoint/mod.ts";
