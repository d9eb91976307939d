/**
 * Lazy, safe checkpoint readers. {@link openCheckpoint} opens a PyTorch `.pth` (torch.save's zip
 * archive) or a `.safetensors` file, lists its tensors from the file's index alone, and reads a
 * tensor's bytes only when asked, converting to fp32. A `.pth`'s pickle is run by a restricted
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
import { openPth } from "./pth.ts";
import { RandomAccessFile } from "./random_access_file.ts";
import { openSafetensors } from "./safetensors.ts";
import type { TensorSource } from "./tensor_source.ts";
import { readNeed, requirePermissions } from "../permissions.ts";

export { CheckpointFormatError, ForbiddenPickleError, TensorReadError } from "./errors.ts";
export type { RowRange, StorageDType, TensorInfo, TensorSource } from "./tensor_source.ts";

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
const PICKLE_PROTO = 0x80;
const SNIFF_BYTES = 9;

/**
 * Opens a checkpoint for lazy reading, choosing the reader from the file's first bytes: a zip
 * archive is read as torch.save's format, an 8-byte length followed by `{` as safetensors.
 * Needs read permission for `path`, checked before anything else.
 *
 * @param path the `.pth` or `.safetensors` file
 * @returns the checkpoint's tensors; close it (or `using` it) when done
 * @throws {MissingPermissionError} without read permission for `path`
 * @throws {CheckpointFormatError} when the file is not a well-formed checkpoint of a known format
 * @throws {ForbiddenPickleError} when a `.pth`'s pickle asks for anything but tensors
 */
export async function openCheckpoint(path: string): Promise<TensorSource> {
  await requirePermissions([readNeed(path, "read the checkpoint")]);
  let file: RandomAccessFile;
  try {
    file = await RandomAccessFile.open(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot read checkpoint "${path}": no such file`, {
        cause: error,
      });
    }
    throw error;
  }
  let head: Uint8Array;
  try {
    head = await file.readAt(0, Math.min(SNIFF_BYTES, file.size), "file header");
  } catch (error) {
    file.close();
    throw error;
  }
  if (ZIP_MAGIC.every((byte, i) => head[i] === byte)) return openPth(file);
  if (head.length === SNIFF_BYTES && head[8] === 0x7b) return openSafetensors(file);
  file.close();
  const shown = [...head].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
  const legacy = head[0] === PICKLE_PROTO
    ? "; it looks like the pre-1.6 torch.save format: re-save it with a recent torch.save"
    : "";
  throw new CheckpointFormatError(
    path,
    0,
    `unrecognised format (first bytes ${shown || "none: the file is empty"}): ` +
      `supported formats are PyTorch .pth (a torch.save zip archive) and .safetensors${legacy}`,
  );
}
