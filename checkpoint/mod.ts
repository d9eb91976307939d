/**
 * Lazy, safe checkpoint readers. {@link openCheckpoint} opens a PyTorch `.pth` (torch.save's zip
 * archive), a `.safetensors` file or a GGUF file, lists its tensors from the file's index alone,
 * and reads a tensor's bytes only when asked, converting (or dequantizing) to fp32. A `.pth`'s pickle is run by a restricted
 * unpickler that refuses anything but a state dict of tensors, and every offset and length read
 * from a file is checked before use.
 *
 * @example Listing tensors and reading rows
 * ```ts
 * import { openCheckpoint } from "@llamane/llamane/checkpoint";
 * import assert from "node:assert/strict";
 *
 * using source = await openCheckpoint("testdata/checkpoint/rows.pth");
 * assert.deepEqual(source.list().map((t) => t.name), ["w_f16", "w_bf16_t", "w_f32"]);
 * assert.deepEqual(source.info("w_f16")?.shape, [64, 48]);
 * const firstRows = await source.readFloat32("w_f16", { start: 0, end: 4 });
 * assert.equal(firstRows.length, 4 * 48);
 * ```
 *
 * @module
 */

import { CheckpointFormatError } from "./errors.ts";
import { type GgufCheckpoint, openGgufFile } from "./gguf.ts";
import { openPth } from "./pth.ts";
import { RandomAccessFile } from "./random_access_file.ts";
import { openSafetensors } from "./safetensors.ts";
import { openShards, parseShardIndex } from "./sharded.ts";
import type { CheckpointFormat, TensorSource } from "./tensor_source.ts";
import { readNeed, requirePermissions } from "../permissions.ts";
import { readRegularTextFile, UnsafeFileError } from "../files/confined.ts";

/** Largest model.safetensors.index.json read; a 405B model's is under 100 KB. */
const MAX_SHARD_INDEX_BYTES = 64 << 20;

export { CheckpointFormatError, ForbiddenPickleError, TensorReadError } from "./errors.ts";
export type {
  BlockDType,
  CheckpointFormat,
  ElementDType,
  RowRange,
  StorageDType,
  StoredBytes,
  TensorInfo,
  TensorSource,
} from "./tensor_source.ts";
export type { GgufCheckpoint } from "./gguf.ts";
export type { SymmetricBlockDType } from "./blocks.ts";

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
const GGUF_MAGIC = [0x47, 0x47, 0x55, 0x46];
const PICKLE_PROTO = 0x80;
const SNIFF_BYTES = 9;

/** The format of a file's first bytes, or `undefined` when they are none of the known ones. */
function formatOf(head: Uint8Array): CheckpointFormat | undefined {
  if (ZIP_MAGIC.every((byte, i) => head[i] === byte)) return "pth";
  if (GGUF_MAGIC.every((byte, i) => head[i] === byte)) return "gguf";
  if (head.length === SNIFF_BYTES && head[8] === 0x7b) return "safetensors";
  return undefined;
}

async function openFile(path: string): Promise<RandomAccessFile> {
  await requirePermissions([readNeed(path, "read the checkpoint")]);
  try {
    return await RandomAccessFile.open(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot read checkpoint "${path}": no such file`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** Opens `path` and finds its format from its first bytes; closes the file when there is none. */
async function openSniffed(
  path: string,
): Promise<{ file: RandomAccessFile; format: CheckpointFormat }> {
  const file = await openFile(path);
  let head: Uint8Array;
  try {
    head = await file.readAt(0, Math.min(SNIFF_BYTES, file.size), "file header");
  } catch (error) {
    file.close();
    throw error;
  }
  const format = formatOf(head);
  if (format !== undefined) return { file, format };
  file.close();
  const shown = [...head].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
  const legacy = head[0] === PICKLE_PROTO
    ? "; it looks like the pre-1.6 torch.save format: re-save it with a recent torch.save"
    : "";
  throw new CheckpointFormatError(
    path,
    0,
    `unrecognised format (first bytes ${shown || "none: the file is empty"}): ` +
      `supported formats are PyTorch .pth (a torch.save zip archive), .safetensors and GGUF` +
      legacy,
  );
}

/**
 * The format of the checkpoint file at `path`, found from its first bytes (never its name).
 *
 * @throws {CheckpointFormatError} when the file is of no supported format
 */
export async function checkpointFormat(path: string): Promise<CheckpointFormat> {
  const { file, format } = await openSniffed(path);
  file.close();
  return format;
}

/**
 * Opens a checkpoint for lazy reading, choosing the reader from the file's first bytes: a zip
 * archive is read as torch.save's format, `GGUF` as a GGUF file, an 8-byte length followed by `{`
 * as safetensors. Needs read permission for `path`, checked before anything else.
 *
 * @param path the `.pth`, `.safetensors` or `.gguf` file
 * @returns the checkpoint's tensors; close it (or `using` it) when done
 * @throws {MissingPermissionError} without read permission for `path`
 * @throws {CheckpointFormatError} when the file is not a well-formed checkpoint of a known format
 * @throws {ForbiddenPickleError} when a `.pth`'s pickle asks for anything but tensors
 */
export async function openCheckpoint(path: string): Promise<TensorSource> {
  const { file, format } = await openSniffed(path);
  switch (format) {
    case "pth":
      return openPth(file);
    case "safetensors":
      return openSafetensors(file);
    case "gguf":
      return openGgufFile(file);
  }
}

/**
 * Opens a GGUF file: its tensors (under GGUF's names) and its header, metadata included.
 *
 * @throws {CheckpointFormatError} when the file is not a well-formed GGUF of version 2 or 3
 */
export async function openGguf(path: string): Promise<GgufCheckpoint> {
  const { file, format } = await openSniffed(path);
  if (format === "gguf") return openGgufFile(file);
  file.close();
  throw new CheckpointFormatError(path, 0, `not a GGUF file: it is a ${format} checkpoint`);
}

/**
 * Opens a sharded safetensors checkpoint from its index (`model.safetensors.index.json`): every
 * shard it names, beside it, is opened (headers only) and checked against the index first.
 *
 * @throws {CheckpointFormatError} when the index is malformed, names an absent shard, or puts a
 *   tensor in a shard that does not hold it
 */
export async function openShardedCheckpoint(indexPath: string): Promise<TensorSource> {
  const dir = indexPath.includes("/") ? indexPath.slice(0, indexPath.lastIndexOf("/")) : ".";
  await requirePermissions([readNeed(dir, "read the checkpoint's shards")]);
  let text: string;
  try {
    text = readRegularTextFile(indexPath, MAX_SHARD_INDEX_BYTES);
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    throw new CheckpointFormatError(indexPath, 0, `the index ${error.detail}`);
  }
  return openShards(indexPath, dir, parseShardIndex(indexPath, text), openCheckpoint);
}
