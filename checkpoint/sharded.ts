/**
 * A checkpoint split over several safetensors files, as Hugging Face shards large models:
 * `model.safetensors.index.json` maps each tensor name to the shard file holding it. Every shard
 * is opened (headers only) and checked against the index before any tensor is read; tensors are
 * then read lazily from their own shard.
 *
 * @module
 */

import { CheckpointFormatError, TensorReadError } from "./errors.ts";
import { JsonSyntaxError, parseJson } from "../files/json.ts";
import type {
  CheckpointFormat,
  RowRange,
  StoredBytes,
  TensorInfo,
  TensorSource,
} from "./tensor_source.ts";

/** Opens one shard file (the caller's `openCheckpoint`, injected so this module stays small). */
export type OpenShard = (path: string) => Promise<TensorSource>;

/** Parses an index's JSON: tensor name -> shard file name, in the index's order. */
export function parseShardIndex(path: string, text: string): Map<string, string> {
  const fail = (detail: string) => new CheckpointFormatError(path, 0, detail);
  let index: unknown;
  try {
    index = parseJson(text);
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    throw new CheckpointFormatError(
      path,
      error.offset ?? 0,
      `invalid JSON: the index ${error.message}`,
    );
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw fail(`expected an object with a "weight_map" of tensor names to shard files`);
  }
  const shards = new Map<string, string>();
  for (const [name, file] of Object.entries(map)) {
    if (typeof file !== "string" || file === "" || /[/\\]/.test(file) || file.startsWith(".")) {
      throw fail(
        `"weight_map" puts tensor "${name}" in ${JSON.stringify(file)}, ` +
          "which is not a file name in the index's folder",
      );
    }
    shards.set(name, file);
  }
  if (shards.size === 0) throw fail(`"weight_map" lists no tensors`);
  return shards;
}

/**
 * Opens every shard an index names, in the folder `dir`, and checks that each holds the tensors
 * the index puts in it. A missing shard is reported with every other missing one, before any is
 * opened.
 */
export async function openShards(
  indexPath: string,
  dir: string,
  weightMap: ReadonlyMap<string, string>,
  open: OpenShard,
): Promise<TensorSource> {
  const files = [...new Set(weightMap.values())];
  const missing: string[] = [];
  for (const file of files) {
    try {
      if (!(await Deno.stat(`${dir}/${file}`)).isFile) missing.push(file);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      missing.push(file);
    }
  }
  if (missing.length > 0) {
    throw new CheckpointFormatError(
      indexPath,
      0,
      `the index names ${missing.length} shard file(s) absent from ${dir}: ${missing.join(", ")}`,
    );
  }
  const shards: TensorSource[] = [];
  try {
    for (const file of files) shards.push(await open(`${dir}/${file}`));
    return new ShardedSource(indexPath, files, shards, weightMap);
  } catch (error) {
    for (const shard of shards) shard.close();
    throw error;
  }
}

class ShardedSource implements TensorSource {
  readonly path: string;
  readonly format: CheckpointFormat = "safetensors";
  readonly #owner = new Map<string, TensorSource>();
  readonly #list: readonly TensorInfo[];
  readonly #shards: readonly TensorSource[];

  constructor(
    path: string,
    files: readonly string[],
    shards: readonly TensorSource[],
    weightMap: ReadonlyMap<string, string>,
  ) {
    this.path = path;
    this.#shards = shards;
    const byFile = new Map(files.map((file, i) => [file, shards[i]!]));
    const list: TensorInfo[] = [];
    for (const [name, file] of weightMap) {
      const shard = byFile.get(file)!;
      const info = shard.info(name);
      if (info === undefined) {
        throw new CheckpointFormatError(
          path,
          0,
          `the index puts tensor "${name}" in ${file}, which does not hold it`,
        );
      }
      this.#owner.set(name, shard);
      list.push(info);
    }
    this.#list = Object.freeze(list);
  }

  list(): readonly TensorInfo[] {
    return this.#list;
  }

  info(name: string): TensorInfo | undefined {
    return this.#owner.get(name)?.info(name);
  }

  readFloat32(name: string, rows?: RowRange): Promise<Float32Array> {
    return this.#shardOf(name).readFloat32(name, rows);
  }

  readStored(name: string, rows?: RowRange): Promise<StoredBytes> {
    return this.#shardOf(name).readStored(name, rows);
  }

  #shardOf(name: string): TensorSource {
    const shard = this.#owner.get(name);
    if (shard === undefined) {
      throw new TensorReadError(this.path, name, "no such tensor in the index");
    }
    return shard;
  }

  close(): void {
    for (const shard of this.#shards) shard.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
