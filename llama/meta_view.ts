/**
 * A checkpoint seen under Meta's tensor names and layout, whatever its own: names are mapped, and
 * q/k rows stored in rotate-half order (Hugging Face) are put back in Meta's adjacent-pair order
 * as they are read. The exporter and the eager reference read only this view, so they never learn
 * where a checkpoint came from.
 *
 * @module
 */

import { elementCount } from "../shape.ts";
import { storedBytes } from "../checkpoint/dtype.ts";
import { TensorReadError } from "../checkpoint/errors.ts";
import type {
  CheckpointFormat,
  RowRange,
  StoredBytes,
  TensorInfo,
  TensorSource,
} from "../checkpoint/tensor_source.ts";

/** How one Meta-named tensor is found in the underlying checkpoint. */
export interface ViewedTensor {
  /** Its name in the checkpoint. */
  readonly stored: string;
  /** Rows per head when the checkpoint stores the rows in rotate-half order. */
  readonly rotateHalfHeadDim?: number;
}

/**
 * The checkpoint row holding Meta row `row` of a rotate-half tensor: within each head, Meta's row
 * 2i is rotate-half row i and row 2i + 1 is row hd/2 + i.
 */
export function rotateHalfRow(row: number, headDim: number): number {
  const head = Math.floor(row / headDim);
  const within = row % headDim;
  return head * headDim + (within % 2 === 0 ? within / 2 : headDim / 2 + (within - 1) / 2);
}

/** A {@link TensorSource} over another one, under Meta's names and row order. */
export class MetaView implements TensorSource {
  readonly #inner: TensorSource;
  readonly #tensors: ReadonlyMap<string, ViewedTensor>;
  readonly #list: readonly TensorInfo[];

  /**
   * @param inner the checkpoint, closed with this view
   * @param tensors Meta name -> where to find it, in the order to list them
   */
  constructor(inner: TensorSource, tensors: ReadonlyMap<string, ViewedTensor>) {
    this.#inner = inner;
    this.#tensors = tensors;
    this.#list = Object.freeze(
      [...tensors].map(([name, { stored }]) => ({ ...inner.info(stored)!, name })),
    );
  }

  /** The underlying checkpoint's file. */
  get path(): string {
    return this.#inner.path;
  }

  /** The underlying checkpoint's format. */
  get format(): CheckpointFormat {
    return this.#inner.format;
  }

  list(): readonly TensorInfo[] {
    return this.#list;
  }

  info(name: string): TensorInfo | undefined {
    const tensor = this.#tensors.get(name);
    return tensor === undefined ? undefined : { ...this.#inner.info(tensor.stored)!, name };
  }

  async readFloat32(name: string, rows?: RowRange): Promise<Float32Array> {
    const tensor = this.#tensor(name);
    const headDim = tensor.rotateHalfHeadDim;
    if (headDim === undefined) return this.#inner.readFloat32(tensor.stored, rows);
    const { first, wanted } = this.#heads(name, headDim, rows);
    const values = await this.#inner.readFloat32(tensor.stored, {
      start: first,
      end: first + wantedSpan(wanted, headDim),
    });
    const columns = values.length / wantedSpan(wanted, headDim);
    return gatherRows(values, columns, wanted, first, headDim);
  }

  async readStored(name: string, rows?: RowRange): Promise<StoredBytes> {
    const tensor = this.#tensor(name);
    const headDim = tensor.rotateHalfHeadDim;
    if (headDim === undefined) return this.#inner.readStored(tensor.stored, rows);
    const { first, wanted } = this.#heads(name, headDim, rows);
    const stored = await this.#inner.readStored(tensor.stored, {
      start: first,
      end: first + wantedSpan(wanted, headDim),
    });
    const rowBytes = storedBytes(stored.dtype, elementCount(stored.shape.slice(1)));
    return {
      dtype: stored.dtype,
      shape: [wanted.end - wanted.start, ...stored.shape.slice(1)],
      bytes: gatherRows(stored.bytes, rowBytes, wanted, first, headDim),
    };
  }

  #tensor(name: string): ViewedTensor {
    const tensor = this.#tensors.get(name);
    if (tensor === undefined) throw new TensorReadError(this.path, name, "no such tensor");
    return tensor;
  }

  /** The rows asked for, and the first row of the whole heads that hold them. */
  #heads(name: string, headDim: number, rows: RowRange | undefined) {
    const total = this.info(name)!.shape[0]!;
    const wanted = rows ?? { start: 0, end: total };
    if (!(wanted.start >= 0 && wanted.start <= wanted.end && wanted.end <= total)) {
      throw new TensorReadError(
        this.path,
        name,
        `rows [${wanted.start}, ${wanted.end}) are not a range within its ${total} rows`,
      );
    }
    return { first: Math.floor(wanted.start / headDim) * headDim, wanted };
  }

  close(): void {
    this.#inner.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Rows from the first row of the first head touched to the end of the last head touched. */
function wantedSpan(wanted: RowRange, headDim: number): number {
  const first = Math.floor(wanted.start / headDim) * headDim;
  return Math.ceil(wanted.end / headDim) * headDim - first;
}

/** Meta rows `wanted` out of rotate-half rows read from row `first` on, `width` items a row. */
function gatherRows<T extends Float32Array | Uint8Array<ArrayBuffer>>(
  source: T,
  width: number,
  wanted: RowRange,
  first: number,
  headDim: number,
): T {
  const out = new (source.constructor as new (n: number) => T)((wanted.end - wanted.start) * width);
  for (let row = wanted.start; row < wanted.end; row++) {
    const from = (rotateHalfRow(row, headDim) - first) * width;
    out.set(source.subarray(from, from + width) as ArrayLike<number>, (row - wanted.start) * width);
  }
  return out;
}
