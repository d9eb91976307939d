/**
 * Opening a Meta checkpoint together with its params.json: the entry point every command that reads
 * a checkpoint (info, export, the eager reference) goes through.
 *
 * @module
 */

import { openCheckpoint } from "../checkpoint/mod.ts";
import { readRegularTextFile, UnsafeFileError } from "../files/confined.ts";
import type { TensorSource } from "../checkpoint/tensor_source.ts";
import { readNeed, requirePermissions } from "../permissions.ts";
import {
  type ConfigOptions,
  type ModelConfig,
  ParamsError,
  parseParamsJson,
  resolveConfig,
} from "./config.ts";

/** Largest params.json read; real ones are a few hundred bytes. */
const MAX_PARAMS_BYTES = 1 << 20;

/** A checkpoint opened for lazy reading, with its resolved config. Dispose it to close the file. */
export interface OpenedModel extends Disposable {
  /** The checkpoint's tensors, read on demand; closed when this is disposed. */
  readonly source: TensorSource;
  /** The config resolved from params.json and the checkpoint's tensor list. */
  readonly config: ModelConfig;
}

/** Where a model comes from. */
export interface ModelPaths {
  /** The checkpoint file (`.pth` or `.safetensors`). */
  readonly checkpoint: string;
  /** Meta's params.json. */
  readonly params: string;
}

/**
 * Opens the checkpoint, reads params.json and resolves the config. Needs read permission for both
 * files and checks it before touching either.
 */
export async function openModel(
  paths: ModelPaths,
  options: ConfigOptions = {},
): Promise<OpenedModel> {
  await requirePermissions([
    readNeed(paths.params, "read the params"),
    readNeed(paths.checkpoint, "read the checkpoint"),
  ]);
  let text: string;
  try {
    text = readRegularTextFile(paths.params, MAX_PARAMS_BYTES);
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    throw new ParamsError(paths.params, `the file ${error.detail}`);
  }
  const params = parseParamsJson(paths.params, text);
  const source = await openCheckpoint(paths.checkpoint);
  try {
    const config = resolveConfig(paths.params, params, source.list(), options);
    return { source, config, [Symbol.dispose]: () => source.close() };
  } catch (error) {
    source.close();
    throw error;
  }
}
