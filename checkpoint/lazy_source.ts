/**
 * The {@link TensorSource} both readers return: a table of tensors, each a strided view into a
 * storage whose bytes are read on demand. A format's reader only builds the table; reading,
 * row selection and conversion live here once.
 *
 * @module
 */

import { isBlockDType, storedBytes } from "./dtype.ts";
import { TensorReadError } from "./errors.ts";
import type { RandomAccessFile } from "./random_access_file.ts";
import { elementCount } from "../shape.ts";
import { gather, isRowMajor, selectRows, type StridedView, viewEnd } from "./strided_view.ts";
import { toFloat32 } from "./to_float32.ts";
import type {
  CheckpointFormat,
  RowRange,
  StoredBytes,
  TensorInfo,
  TensorSource,
} from "./tensor_source.ts";

/** Most elements one `readFloat32` call returns (4 GiB of fp32); read larger tensors by rows. */
export const MAX_READ_ELEMENTS = 2 ** 30;

/** The bytes of one storage, read on demand. */
export interface StorageBytes {
  /** Reads `length` bytes from `start` into a new buffer of exactly that size. */
  read(start: number, length: number): Promise<Uint8Array<ArrayBuffer>>;
}

/** One tensor of the table: what it is, and where its elements are. */
export interface StoredTensor {
  /** Name, dtype and shape. */
  readonly info: TensorInfo;
  /** Its elements' positions in the storage; the reader has checked they lie inside it. */
  readonly view: StridedView;
  /** The storage, possibly shared with other tensors. */
  readonly storage: StorageBytes;
}

/** A checkpoint's tensors, read lazily from its open file. */
export class LazySource implements TensorSource {
  /** The file this source reads. */
  readonly path: string;
  /** The file's format. */
  readonly format: CheckpointFormat;
  #file: RandomAccessFile;
  #tensors: ReadonlyMap<string, StoredTensor>;
  #list: readonly TensorInfo[];
  #closed = false;

  /**
   * @param file the open checkpoint, closed by {@link LazySource.close}
   * @param tensors the tensors in file order, with unique names and views that fit their storages
   * @param format the file's format
   */
  constructor(file: RandomAccessFile, tensors: readonly StoredTensor[], format: CheckpointFormat) {
    this.path = file.path;
    this.format = format;
    this.#file = file;
    this.#tensors = new Map(tensors.map((tensor) => [tensor.info.name, tensor]));
    this.#list = Object.freeze(tensors.map((tensor) => tensor.info));
  }

  /** Every tensor in the checkpoint, in file order. */
  list(): readonly TensorInfo[] {
    return this.#list;
  }

  /** One tensor's description, or `undefined` when there is no such tensor. */
  info(name: string): TensorInfo | undefined {
    return this.#tensors.get(name)?.info;
  }

  /**
   * Reads a tensor, or rows `[start, end)` of its first axis, as row-major fp32. Reads only the
   * byte range those elements span, once, into one buffer.
   */
  async readFloat32(name: string, rows?: RowRange): Promise<Float32Array> {
    const tensor = this.#tensor(name);
    const view = rows === undefined ? tensor.view : this.#selectRows(tensor, rows);
    const count = elementCount(view.shape);
    if (count > MAX_READ_ELEMENTS) {
      throw new TensorReadError(
        this.path,
        name,
        `${count} elements is more than ${MAX_READ_ELEMENTS} in one read: read it in row ranges`,
      );
    }
    if (count === 0) return new Float32Array(0);
    const { dtype } = tensor.info;
    if (isBlockDType(dtype)) return toFloat32(dtype, await this.#readRowMajor(tensor, view));
    const itemBytes = storedBytes(dtype, 1);
    const end = viewEnd(view);
    const bytes = await tensor.storage.read(
      view.offset * itemBytes,
      (end - view.offset) * itemBytes,
    );
    const local = { ...view, offset: 0 };
    return toFloat32(dtype, isRowMajor(local) ? bytes : gather(bytes, itemBytes, local));
  }

  /** Reads a tensor, or rows `[start, end)` of it, as stored; it must be row-major. */
  async readStored(name: string, rows?: RowRange): Promise<StoredBytes> {
    const tensor = this.#tensor(name);
    const view = rows === undefined ? tensor.view : this.#selectRows(tensor, rows);
    return {
      dtype: tensor.info.dtype,
      shape: view.shape,
      bytes: await this.#readRowMajor(tensor, view),
    };
  }

  #tensor(name: string): StoredTensor {
    const tensor = this.#tensors.get(name);
    if (tensor !== undefined) return tensor;
    const examples = this.#list.slice(0, 3).map((info) => JSON.stringify(info.name)).join(", ");
    throw new TensorReadError(
      this.path,
      name,
      `no such tensor (the checkpoint has ${this.#list.length}, e.g. ${examples})`,
    );
  }

  /** The bytes of a row-major view, read in one piece (block dtypes: whole rows of blocks). */
  #readRowMajor(tensor: StoredTensor, view: StridedView): Promise<Uint8Array<ArrayBuffer>> {
    if (!isRowMajor({ ...view, offset: 0 })) {
      throw new TensorReadError(
        this.path,
        tensor.info.name,
        "it is a strided view, whose stored bytes are not one row-major run",
      );
    }
    const { dtype } = tensor.info;
    return tensor.storage.read(
      storedBytes(dtype, view.offset),
      storedBytes(dtype, elementCount(view.shape)),
    );
  }

  #selectRows(tensor: StoredTensor, rows: RowRange): StridedView {
    const { name, shape } = tensor.info;
    const { start, end } = rows;
    const first = shape[0];
    if (first === undefined) throw new TensorReadError(this.path, name, "a scalar has no rows");
    if (
      !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end ||
      end > first
    ) {
      throw new TensorReadError(
        this.path,
        name,
        `rows [${start}, ${end}) are not a range within its ${first} rows`,
      );
    }
    return selectRows(tensor.view, start, end);
  }

  /** Closes the file. Closing twice is harmless. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  /** Same as {@link LazySource.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
