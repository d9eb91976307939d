/**
 * Opening a model from any checkpoint layout: the entry point every command that reads a
 * checkpoint (info, export, the eager reference) goes through. What `checkpoint` names decides the
 * layout, found from content, never from file names:
 *
 * - a folder, or a JSON file in it (`config.json`, `model.safetensors.index.json`): Hugging Face
 *   (config.json, then model.safetensors or the shards its index names);
 * - a GGUF file: llama.cpp's layout, config from its metadata;
 * - a `.pth` or `.safetensors` with `params`: Meta's layout.
 *
 * Whatever the layout, the model is returned as Meta's names and q/k row order (a
 * {@link MetaView}), with the resolved config and where each of its fields came from.
 *
 * @module
 */

import {
  checkpointFormat,
  openCheckpoint,
  openGguf,
  openShardedCheckpoint,
} from "../checkpoint/mod.ts";
import { CheckpointFormatError } from "../checkpoint/errors.ts";
import type { CheckpointFormat, TensorSource } from "../checkpoint/tensor_source.ts";
import { readRegularTextFile, UnsafeFileError } from "../files/confined.ts";
import { dimensionProblem, type LimitedDimension, MODEL_LIMITS } from "./limits.ts";
import { readNeed, requirePermissions } from "../permissions.ts";
import {
  type ConfigOptions,
  DEFAULT_ROPE_SCALE_FACTOR,
  type Json,
  type ModelConfig,
  ParamsError,
  parseParamsJson,
  resolveConfig,
} from "./config.ts";
import { metaNameOfGguf, resolveGgufConfig, ROPE_FREQS } from "./gguf.ts";
import {
  hasHuggingFaceNames,
  isRotateHalfTensor,
  metaNameOfHuggingFace,
  resolveHuggingFaceConfig,
} from "./hugging_face.ts";
import { MetaView, type ViewedTensor } from "./meta_view.ts";
import type { CheckpointLayout, Provenance, ResolvedConfig } from "./provenance.ts";

/** A checkpoint opened for lazy reading, with its resolved config. Dispose it to close the file. */
export interface OpenedModel extends Disposable {
  /** The tensors under Meta's names and q/k order, read on demand; closed when disposed. */
  readonly source: TensorSource;
  /** The config resolved from the checkpoint's own description and tensor list. */
  readonly config: ModelConfig;
  /** The layout the checkpoint was found in. */
  readonly layout: CheckpointLayout;
  /** Where each config field came from. */
  readonly provenance: Provenance;
  /** Things the user should know, e.g. a RoPE scale factor that had to be assumed. */
  readonly warnings: readonly string[];
}

/** Where a model comes from. */
export interface ModelPaths {
  /**
   * A Meta `.pth` or `.safetensors` (with `params`), a Hugging Face model folder or its
   * config.json, or a GGUF file.
   */
  readonly checkpoint: string;
  /** Meta's params.json; only for Meta layouts. */
  readonly params?: string | undefined;
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash === -1 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Largest params.json or config.json read; real ones are a few kilobytes. */
const MAX_CONFIG_BYTES = 1 << 20;

function readJson(path: string): Json {
  let text: string;
  try {
    text = readRegularTextFile(path, MAX_CONFIG_BYTES);
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    throw new ParamsError(path, `the file ${error.detail}`);
  }
  return parseParamsJson(path, text);
}

/**
 * What `checkpoint` names: a Hugging Face folder (a directory, or a JSON file in one such as its
 * config.json), else a checkpoint file of the format its first bytes show.
 */
async function identify(
  checkpoint: string,
): Promise<{ folder: string } | { format: CheckpointFormat }> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(checkpoint);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot read checkpoint "${checkpoint}": no such file`, {
        cause: error,
      });
    }
    throw error;
  }
  if (stat.isDirectory) return { folder: checkpoint };
  try {
    return { format: await checkpointFormat(checkpoint) };
  } catch (error) {
    if (!(error instanceof CheckpointFormatError) || !(await startsWithBrace(checkpoint))) {
      throw error;
    }
    return { folder: parentOf(checkpoint) };
  }
}

async function startsWithBrace(path: string): Promise<boolean> {
  using file = await Deno.open(path);
  const head = new Uint8Array(64);
  const n = (await file.read(head)) ?? 0;
  return new TextDecoder().decode(head.subarray(0, n)).trimStart().startsWith("{");
}

function opened(
  source: TensorSource,
  resolved: ResolvedConfig,
  layout: CheckpointLayout,
  warnings: readonly string[] = [],
): OpenedModel {
  // Every layout's config meets the same limits before anything is sized by it.
  for (const key of Object.keys(MODEL_LIMITS) as LimitedDimension[]) {
    const problem = dimensionProblem(key, resolved.config[key]);
    if (problem !== undefined) {
      throw new ParamsError(source.path, `${key} (${resolved.provenance[key]}) ${problem}`);
    }
  }
  return {
    source,
    config: resolved.config,
    layout,
    provenance: resolved.provenance,
    warnings,
    [Symbol.dispose]: () => source.close(),
  };
}

/** Meta-named view of `inner` by `rename`, refusing tensors that have no place in a Llama. */
function metaView(
  inner: TensorSource,
  rename: (name: string) => string | null | undefined,
  rotateHalfHeadDim?: (name: string) => number | undefined,
): MetaView {
  const tensors = new Map<string, ViewedTensor>();
  const strangers: string[] = [];
  for (const { name } of inner.list()) {
    const meta = rename(name);
    if (meta === undefined) strangers.push(name);
    if (meta === undefined || meta === null) continue;
    const headDim = rotateHalfHeadDim?.(name);
    tensors.set(
      meta,
      headDim === undefined ? { stored: name } : { stored: name, rotateHalfHeadDim: headDim },
    );
  }
  if (strangers.length > 0) {
    const shown = strangers.slice(0, 5).map((s) => `"${s}"`).join(", ");
    throw new CheckpointFormatError(
      inner.path,
      0,
      `${strangers.length} tensor(s) have no place in a Llama (${shown}${
        strangers.length > 5 ? ", ..." : ""
      }): biases, qk-norms or experts mean another architecture`,
    );
  }
  return new MetaView(inner, tensors);
}

async function openHuggingFace(folder: string): Promise<OpenedModel> {
  const configPath = `${folder}/config.json`;
  const index = `${folder}/model.safetensors.index.json`;
  const single = `${folder}/model.safetensors`;
  await requirePermissions([readNeed(folder, "read the Hugging Face model folder")]);
  if (!(await isFile(configPath))) {
    throw new ParamsError(configPath, "no config.json in the Hugging Face model folder");
  }
  const resolved = resolveHuggingFaceConfig(configPath, readJson(configPath));
  let inner: TensorSource;
  if (await isFile(index)) inner = await openShardedCheckpoint(index);
  else if (await isFile(single)) inner = await openCheckpoint(single);
  else {
    throw new CheckpointFormatError(
      folder,
      0,
      "the folder has neither model.safetensors nor model.safetensors.index.json",
    );
  }
  try {
    const { config } = resolved;
    // A tied model reads its head from the embedding, even when lm_head is stored too.
    const rename = (name: string) => {
      const meta = metaNameOfHuggingFace(name);
      return config.tiedOutput && meta === "output.weight" ? null : meta;
    };
    const rotateHalf = (name: string) => isRotateHalfTensor(name) ? config.headDim : undefined;
    return opened(metaView(inner, rename, rotateHalf), resolved, "hugging-face");
  } catch (error) {
    inner.close();
    throw error;
  }
}

async function openGgufModel(path: string): Promise<OpenedModel> {
  const gguf = await openGguf(path);
  try {
    const ropeFreqs = gguf.info(ROPE_FREQS) === undefined
      ? undefined
      : await gguf.readFloat32(ROPE_FREQS);
    const resolved = resolveGgufConfig(path, gguf.header, ropeFreqs);
    return opened(metaView(gguf, metaNameOfGguf), resolved, "gguf");
  } catch (error) {
    gguf.close();
    throw error;
  }
}

function metaProvenance(params: Json, options: ConfigOptions, config: ModelConfig): Provenance {
  const from = (key: string, fallback: string) =>
    Object.hasOwn(params, key) ? `params.json "${key}"` : fallback;
  const vocab = params.vocab_size;
  return {
    dim: from("dim", ""),
    nLayers: from("n_layers", ""),
    nHeads: from("n_heads", ""),
    nKvHeads: from("n_kv_heads", "n_heads (none given)"),
    headDim: from("head_dim", "dim / n_heads"),
    hiddenDim: from("hidden_dim", "Meta's rule from dim, multiple_of, ffn_dim_multiplier"),
    vocabSize: vocab === undefined || vocab === -1
      ? "rows of tok_embeddings.weight"
      : `params.json "vocab_size"`,
    normEps: from("norm_eps", "default 1e-5"),
    ropeTheta: from("rope_theta", "default 10000"),
    ropeScaling: config.ropeScaling === undefined
      ? "none"
      : options.ropeScaleFactor === undefined
      ? `params.json "use_scaled_rope", factor ${DEFAULT_ROPE_SCALE_FACTOR} assumed`
      : `params.json "use_scaled_rope", factor from --rope_scale_factor`,
    tiedOutput: config.tiedOutput ? "no output.weight tensor" : "output.weight present",
    trainedContext: from("max_seq_len", "not given"),
  };
}

async function openMeta(
  checkpoint: string,
  paramsPath: string,
  options: ConfigOptions,
): Promise<OpenedModel> {
  const params = readJson(paramsPath);
  const source = await openCheckpoint(checkpoint);
  try {
    if (source.format === "gguf") {
      throw new ParamsError(paramsPath, "a GGUF file carries its own config: drop -p/--params");
    }
    if (hasHuggingFaceNames(source.list())) {
      throw new ParamsError(
        paramsPath,
        `"${checkpoint}" has Hugging Face tensor names (model.embed_tokens.weight, ...): pass ` +
          "its folder (with config.json) as the checkpoint, without -p/--params",
      );
    }
    const config = resolveConfig(paramsPath, params, source.list(), options);
    const warnings = config.ropeScaling !== undefined && options.ropeScaleFactor === undefined
      ? [
        `params.json sets use_scaled_rope but does not record the scale factor: assuming ` +
        `${DEFAULT_ROPE_SCALE_FACTOR}. Pass --rope_scale_factor 8 for Llama 3.1 or ` +
        `--rope_scale_factor 32 for Llama 3.2 1B/3B`,
      ]
      : [];
    const resolved = { config, provenance: metaProvenance(params, options, config) };
    return opened(source, resolved, "meta", warnings);
  } catch (error) {
    source.close();
    throw error;
  }
}

/**
 * Opens a model from a Meta checkpoint with its params.json, a Hugging Face folder (or its
 * config.json), or a GGUF file, and resolves its config. Needs read permission for what it reads,
 * checked before reading it.
 *
 * @throws {ParamsError} when a config is missing, malformed, or a Meta checkpoint has no params
 * @throws {NotLlamaError} when the checkpoint describes another architecture
 * @throws {CheckpointFormatError} when a file is not a well-formed checkpoint
 */
export async function openModel(
  paths: ModelPaths,
  options: ConfigOptions = {},
): Promise<OpenedModel> {
  const { checkpoint, params } = paths;
  await requirePermissions([
    ...(params === undefined ? [] : [readNeed(params, "read the params")]),
    readNeed(checkpoint, "read the checkpoint"),
  ]);
  const found = await identify(checkpoint);
  if ("folder" in found) {
    if (params !== undefined) {
      throw new ParamsError(params, "a Hugging Face model carries its own config.json: drop -p");
    }
    return openHuggingFace(found.folder);
  }
  const { format } = found;
  if (format === "gguf") {
    if (params !== undefined) {
      throw new ParamsError(params, "a GGUF file carries its own config: drop -p/--params");
    }
    return openGgufModel(checkpoint);
  }
  if (params === undefined) {
    const beside = `${parentOf(checkpoint)}/config.json`;
    throw new ParamsError(
      "(none)",
      `"${checkpoint}" is a ${format} checkpoint in Meta's layout, which needs its params.json ` +
        `(-p/--params)` +
        (await isFile(beside).catch(() => false)
          ? "; for a Hugging Face model pass its folder instead"
          : ""),
    );
  }
  return openMeta(checkpoint, params, options);
}
