/**
 * The Llama model itself: its config (from Meta, Hugging Face or GGUF checkpoints), the tensors
 * it needs, RoPE tables, the q/k row-order check, the tokens a token attends to past the KV cache,
 * and the eager fp32 reference forward.
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
export { EagerLlama, type EagerSequence } from "./forward.ts";
export {
  type AttentionWindow,
  attentionWindow,
  cacheSlot,
  firstRecentPosition,
  inWindow,
  MAX_ATTENTION_SINKS,
  UNBOUNDED_WINDOW,
} from "./attention_window.ts";
export { type ModelPaths, type OpenedModel, openModel } from "./open.ts";
export { type CheckpointLayout, NotLlamaError, type Provenance } from "./provenance.ts";
export {
  measureQkLayout,
  QK_LAYOUT_THRESHOLD,
  QkLayoutError,
  type QkLayoutVerdict,
} from "./qk_layout.ts";
