/**
 * The Llama model itself: its config, the tensors it needs, RoPE tables, and the eager fp32
 * reference forward.
 *
 * @module
 */

export * from "./config.ts";
export * from "./weights.ts";
export * from "./rope.ts";
export { EagerLlama } from "./forward.ts";
export { type ModelPaths, type OpenedModel, openModel } from "./open.ts";
export type { RowRange, StorageDType, TensorInfo, TensorSource } from "../checkpoint/mod.ts";
