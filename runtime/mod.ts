/**
 * The runtime's parts, for tools that drive a model call by call or bring their own backend:
 * loaded models and sessions, KV caches and call inputs, token generation, lookahead, sampling,
 * backends and their selection, and scoring a bundle on a text (`evaluate`). Loading a bundle and
 * generating text go through the top-level entry point.
 *
 * @example Greedy tokens on the CPU backend, call by call
 * ```ts ignore
 * import { loadModel } from "@llamane/llamane";
 * import { generateTokens, ModelSession } from "@llamane/llamane/runtime";
 * using model = await loadModel("out/kjv-tiny.llamane", { backend: "cpu" });
 * const prompt = [1, 450, 4563];
 * const options = { temperature: 0, maxNewTokens: 8, stopTokens: [] };
 * for await (const token of generateTokens(new ModelSession(model), prompt, options)) {
 *   console.log(token);
 * }
 * ```
 *
 * @module
 */

export type { ForwardResult, LogitRows } from "./model.ts";
export { ModelSession } from "./session.ts";
export {
  checkEvaluation,
  evaluate,
  type EvaluateOptions,
  type Evaluation,
  type ReferenceEvaluation,
  type ReferenceModel,
  shapeDifferences,
} from "./evaluate.ts";
export { bundleLogitChunks, bundleLogits, type LogitChunk } from "./compare.ts";
export {
  encodeText,
  GENERATE_DEFAULTS,
  generateTokens,
  type TokenGenerationOptions,
} from "./generate.ts";
export { PromptCache } from "./prompt_cache.ts";
export { type ChatOptions, encodeConversation } from "./chat.ts";
export {
  emptyGenerationStats,
  type GenerationStats,
  type LookaheadStats,
} from "./generation_stats.ts";
export { LOOKAHEAD_DEFAULTS, type LookaheadOptions } from "./lookahead.ts";
export {
  argmax,
  type RandomSource,
  sampleToken,
  type SamplingOptions,
  seededRandom,
} from "./sampler.ts";
export { allocateFloats, type FloatArray, KvCache, type KvCacheShape } from "./kv_cache.ts";
export {
  buildCallInputs,
  type CallInputs,
  type CallSpec,
  causalVisibility,
  type InCallVisibility,
} from "./call_inputs.ts";
export type { Backend, IoArray, LoadedFunction } from "./backend/backend.ts";
export {
  BACKEND_DEFAULTS,
  BackendChoiceError,
  type BackendName,
  type BackendOptions,
  type BackendRequest,
  chooseBackend,
  parseBackendRequest,
  parseComputeUnits,
  selectBackend,
  type SelectBackendOptions,
} from "./backend/select.ts";
export { CpuBackend, type CpuBackendOptions } from "./backend/cpu.ts";
export { CoremlBackend, type CoremlBackendOptions } from "./backend/coreml.ts";
export type { ComputeUnits } from "../ffi/coreml.ts";
