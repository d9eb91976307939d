/**
 * Reader for PyTorch checkpoints saved by `torch.save` (the zip format of PyTorch 1.6 and later).
 * The archive holds `<archive>/data.pkl`, the pickled state dict (whose tensors refer to storages
 * by key), and one member `<archive>/data/<key>` per storage with its raw little-endian bytes.
 * The archive folder name varies (torch uses the file's stem, or `archive`). Only the pickle is
 * read when opening; storages are read when a tensor is.
 *
 * @module
 */

import { elementCount } from "../shape.ts";
import { DTYPE_BYTES } from "./dtype.ts";
import { CheckpointFormatError } from "./errors.ts";
import { LazySource, type StorageBytes, type StoredTensor } from "./lazy_source.ts";
import { describe, type PickleValue, type StorageRef, TensorRef, unpickle } from "./pickle.ts";
import type { RandomAccessFile } from "./random_access_file.ts";
import { repeatsElements, viewEnd } from "./strided_view.ts";
import type { TensorSource } from "./tensor_source.ts";
import { ZipArchive } from "./zip.ts";

/** Largest `data.pkl` read, in bytes; a state dict's pickle is about 300 bytes per tensor. */
export const MAX_PICKLE_BYTES = 64 * 1024 * 1024;

const PICKLE_NAME = /^[^/]+\/data\.pkl$/;

/**
 * Reads the index of the torch.save archive in `file` and returns its tensors. Takes ownership of
 * `file`: the returned source closes it, and so does a failure here.
 */
export async function openPth(file: RandomAccessFile): Promise<TensorSource> {
  try {
    return await readPth(file);
  } catch (error) {
    file.close();
    throw error;
  }
}

async function readPth(file: RandomAccessFile): Promise<TensorSource> {
  const { path } = file;
  const zip = await ZipArchive.open(file);
  const pickles = zip.entries.filter((entry) => PICKLE_NAME.test(entry.name));
  if (pickles.length !== 1) {
    throw new CheckpointFormatError(
      path,
      0,
      `not a torch.save archive: expected one "<archive>/data.pkl", found ${pickles.length}` +
        (pickles.length > 0
          ? ` (${pickles.map((entry) => JSON.stringify(entry.name)).join(", ")})`
          : ""),
    );
  }
  const pickleEntry = pickles[0]!;
  const archive = pickleEntry.name.slice(0, pickleEntry.name.indexOf("/"));
  await checkByteOrder(zip, path, archive);
  if (pickleEntry.size > MAX_PICKLE_BYTES) {
    throw new CheckpointFormatError(
      path,
      pickleEntry.headerOffset,
      `"${pickleEntry.name}" is ${pickleEntry.size} bytes, ` +
        `more than the ${MAX_PICKLE_BYTES} a state dict needs`,
    );
  }
  const pickle = await zip.readAll(pickleEntry);
  const root = unpickle(pickle, {
    path,
    member: pickleEntry.name,
    fileOffset: await zip.dataOffset(pickleEntry),
  });
  const dict = stateDict(root);
  if (dict === undefined) {
    throw new CheckpointFormatError(
      path,
      pickleEntry.headerOffset,
      `"${pickleEntry.name}" holds ${describe(root)}, not a dict of tensors`,
    );
  }

  const storages = new Map<string, Storage>();
  const tensors: StoredTensor[] = [];
  for (const [name, value] of dict) {
    // Non-tensor entries (e.g. `_extra_state`, counters) carry nothing a model reader needs.
    if (typeof name !== "string" || !(value instanceof TensorRef)) continue;
    const storage = storages.get(value.storage.key) ??
      openStorage(zip, pickleEntry.headerOffset, archive, value.storage);
    storages.set(value.storage.key, storage);
    tensors.push(checkedTensor(path, name, value, storage));
  }
  checkRepeatedViews(path, pickleEntry.headerOffset, tensors, storages);
  if (tensors.length === 0) {
    const keys = [...dict.keys()].slice(0, 5).map((key) => JSON.stringify(String(key)));
    const shown = keys.length > 0 ? `: ${keys.join(", ")}` : "";
    throw new CheckpointFormatError(
      path,
      pickleEntry.headerOffset,
      `no tensors found in "${pickleEntry.name}" (its dict has ${dict.size} keys${shown})`,
    );
  }
  return new LazySource(file, tensors, "pth");
}

/**
 * Views that repeat storage elements are read as PyTorch reads them, but only while all of them
 * together hold no more elements than the archive's storages: a few bytes of pickle must not
 * declare billions of parameters backed by nothing.
 */
function checkRepeatedViews(
  path: string,
  pickleOffset: number,
  tensors: readonly StoredTensor[],
  storages: ReadonlyMap<string, Storage>,
): void {
  const stored = [...storages.values()].reduce((sum, s) => sum + s.ref.numel, 0);
  let repeated = 0;
  for (const { info, view } of tensors) {
    if (!repeatsElements(view)) continue;
    repeated += elementCount(view.shape);
    if (repeated > stored) {
      throw new CheckpointFormatError(
        path,
        pickleOffset,
        `tensor "${info.name}" (shape [${view.shape.join(", ")}], strides ` +
          `[${view.strides.join(", ")}]) repeats storage elements: with the other repeating ` +
          `views it declares ${repeated} elements, more than the ${stored} the archive stores`,
      );
    }
  }
}

/** The state dict: the top-level dict, or its `"model"` dict (as training checkpoints have). */
function stateDict(root: PickleValue): Map<PickleValue, PickleValue> | undefined {
  if (!(root instanceof Map)) return undefined;
  const model = root.get("model");
  return model instanceof Map ? model : root;
}

/** torch 2.1 and later record the byte order of the storages; older archives are little-endian. */
async function checkByteOrder(zip: ZipArchive, path: string, archive: string): Promise<void> {
  const entry = zip.get(`${archive}/byteorder`);
  if (entry === undefined) return;
  // "little" or "big", perhaps with a newline: anything longer is not a byte order.
  if (entry.size > 16) {
    throw new CheckpointFormatError(
      path,
      entry.headerOffset,
      `"${entry.name}" is ${entry.size} bytes, expected "little"`,
    );
  }
  const order = new TextDecoder().decode(await zip.readAll(entry)).trim();
  if (order !== "little") {
    throw new CheckpointFormatError(
      path,
      entry.headerOffset,
      `"${entry.name}" says the storages are ${JSON.stringify(order)}-endian; ` +
        "only little-endian checkpoints are supported: re-save it on a little-endian machine",
    );
  }
}

/** A storage as the pickle describes it, and its archive member. */
interface Storage {
  readonly ref: StorageRef;
  readonly bytes: StorageBytes;
  /** Offset of the member's local header, for error messages. */
  readonly headerOffset: number;
}

function openStorage(
  zip: ZipArchive,
  pickleOffset: number,
  archive: string,
  ref: StorageRef,
): Storage {
  const path = zip.path;
  const name = `${archive}/data/${ref.key}`;
  const entry = zip.get(name);
  if (entry === undefined) {
    throw new CheckpointFormatError(
      path,
      pickleOffset,
      `storage "${ref.key}" has no archive member "${name}"`,
    );
  }
  const needed = ref.numel * DTYPE_BYTES[ref.dtype];
  if (entry.size < needed) {
    throw new CheckpointFormatError(
      path,
      entry.headerOffset,
      `storage "${name}" holds ${entry.size} bytes, ` +
        `fewer than its ${ref.numel} ${ref.dtype} elements need (${needed})`,
    );
  }
  return {
    ref,
    bytes: { read: (start, length) => zip.read(entry, start, length) },
    headerOffset: entry.headerOffset,
  };
}

/** Checks the tensor agrees with its storage: same dtype and size everywhere, view inside it. */
function checkedTensor(
  path: string,
  name: string,
  tensor: TensorRef,
  storage: Storage,
): StoredTensor {
  const { ref, headerOffset } = storage;
  if (tensor.storage.dtype !== ref.dtype || tensor.storage.numel !== ref.numel) {
    throw new CheckpointFormatError(
      path,
      headerOffset,
      `tensor "${name}" views storage "${ref.key}" ` +
        `as ${tensor.storage.numel} ${tensor.storage.dtype} elements, ` +
        `another tensor as ${ref.numel} ${ref.dtype}`,
    );
  }
  const view = { offset: tensor.offset, shape: tensor.shape, strides: tensor.strides };
  if (elementCount(view.shape) === Infinity) {
    throw new CheckpointFormatError(
      path,
      headerOffset,
      `tensor "${name}" has shape [${view.shape.join(", ")}], too many elements`,
    );
  }
  const end = viewEnd(view);
  if (end > ref.numel) {
    throw new CheckpointFormatError(
      path,
      headerOffset,
      `tensor "${name}" (shape [${view.shape.join(", ")}], ` +
        `strides [${view.strides.join(", ")}], offset ${view.offset}) reaches element ${end - 1} ` +
        `of storage "${ref.key}", which has only ${ref.numel}: ` +
        "the storage is too short for the view",
    );
  }
  return {
    info: Object.freeze({ name, dtype: ref.dtype, shape: Object.freeze([...view.shape]) }),
    view,
    storage: storage.bytes,
  };
}
