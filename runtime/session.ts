/**
 * One conversation with a loaded model: the KV caches and the calls that fill them.
 *
 * @module
 */

import type { BundleManifest } from "../bundle/manifest.ts";
import { ropeFrequencies } from "../llama/rope.ts";
import { buildCallInputs, type CallSpec } from "./call_inputs.ts";
import { KvCache, type KvCacheShape } from "./kv_cache.ts";
import { ForwardBuffers, type ForwardResult, type LoadedModel, type LogitRows } from "./model.ts";

/** The caches a bundle's calls read and write. */
export function cacheShapeOf(manifest: BundleManifest): KvCacheShape {
  const { model: config, export: exported } = manifest;
  return {
    layers: config.nLayers,
    kvHeads: config.nKvHeads,
    cacheLength: exported.cacheLen,
    headDim: config.headDim,
    dtype: exported.dtype,
    trainedContext: config.trainedContext,
  };
}

/** Runs forward calls on a model and keeps its cache. */
export class ModelSession {
  /** The model the calls run on. */
  readonly model: LoadedModel;
  /** The keys and values of every token committed so far. */
  readonly cache: KvCache;
  readonly #freqs: Float64Array;
  /** This session's output arrays: other sessions on the model may run meanwhile. */
  readonly #buffers = new ForwardBuffers();

  /** Starts a session with an empty cache. */
  constructor(model: LoadedModel) {
    this.model = model;
    this.cache = new KvCache(cacheShapeOf(model.manifest));
    this.#freqs = ropeFrequencies(model.manifest.model);
  }

  /**
   * Runs one call at the cache's position without committing anything: the caller decides which
   * of the call's entries join the cache (see {@link KvCache.commit}).
   */
  async forward(spec: CallSpec, rows: LogitRows = "all"): Promise<ForwardResult> {
    return await this.model.forward(
      spec.callLength,
      buildCallInputs(this.cache, this.#freqs, spec),
      this.cache,
      rows,
      this.#buffers,
    );
  }

  /**
   * Feeds `tokens` (at most L) in one causal call, commits them to the cache, and returns the
   * call's logits: `[callLength, V]`, or `[1, V]` for a bundle that returns only the last row or
   * when `rows` is `"last"` and the backend could compute that row alone.
   */
  async call(
    tokens: readonly number[],
    rows: LogitRows = "all",
  ): Promise<Float16Array | Float32Array> {
    const callLength = this.model.callLengthFor(tokens.length);
    const result = await this.forward({ tokens, callLength }, rows);
    this.cache.commit(result.newKeys, result.newValues, callLength, tokens.map((_, i) => i));
    return result.logits;
  }

  /** Like {@link call}, returning only the logits row of the last token. */
  async step(tokens: readonly number[]): Promise<Float16Array | Float32Array> {
    const logits = await this.call(tokens, "last");
    const vocab = this.model.manifest.model.vocabSize;
    const row = logits.length === vocab ? 0 : tokens.length - 1;
    return logits.subarray(row * vocab, (row + 1) * vocab);
  }
}
