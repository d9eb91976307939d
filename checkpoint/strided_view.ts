/**
 * Strided views over a flat storage, as PyTorch describes a tensor: an element offset, a shape and
 * per-axis strides (in elements). Checkpoint readers use this to find the byte range a view (or a
 * range of its rows) touches and to copy a non-contiguous view into row-major order.
 *
 * @module
 */

import { elementCount } from "../shape.ts";

/** A view into a flat storage; all counts in elements. Strides are non-negative (as in PyTorch). */
export interface StridedView {
  /** Index in the storage of the view's first element. */
  readonly offset: number;
  /** Logical shape, outermost axis first. */
  readonly shape: readonly number[];
  /** Storage elements to step per step along each axis. */
  readonly strides: readonly number[];
}

/** One past the largest storage index `view` touches; `view.offset` when it has no elements. */
export function viewEnd(view: StridedView): number {
  if (elementCount(view.shape) === 0) return view.offset;
  let last = view.offset;
  view.shape.forEach((size, axis) => last += (size - 1) * view.strides[axis]!);
  return last + 1;
}

/**
 * Whether `view` shows some storage element more than once (a stride of 0 on a longer axis, as
 * `expand()` makes, or axes that overlap): it then holds more elements than the storage range it
 * spans, and reading it allocates more than the storage holds.
 */
export function repeatsElements(view: StridedView): boolean {
  return elementCount(view.shape) > viewEnd(view) - view.offset;
}

/** The row-major strides of `shape`. */
export function rowMajorStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    strides[axis] = step;
    step *= shape[axis]!;
  }
  return strides;
}

/** Whether `view`'s elements lie in row-major order, no gaps (size-1 axes may have any stride). */
export function isRowMajor(view: StridedView): boolean {
  let step = 1;
  for (let axis = view.shape.length - 1; axis >= 0; axis--) {
    const size = view.shape[axis]!;
    if (size !== 1 && view.strides[axis] !== step) return false;
    step *= size;
  }
  return true;
}

/** The view of rows `[start, end)` of `view`'s first axis. The caller checks the range. */
export function selectRows(view: StridedView, start: number, end: number): StridedView {
  return {
    offset: view.offset + start * view.strides[0]!,
    shape: [end - start, ...view.shape.slice(1)],
    strides: view.strides,
  };
}

/**
 * Copies the elements of `view` out of `storage` (raw bytes, `itemBytes` per element, storage index
 * 0 at byte 0) into a new row-major buffer. Elements are moved as raw words, never as numbers, so
 * every bit pattern (NaN payloads, int64) survives.
 */
export function gather(
  storage: Uint8Array<ArrayBuffer>,
  itemBytes: number,
  view: StridedView,
): Uint8Array<ArrayBuffer> {
  const count = elementCount(view.shape);
  // 8-byte elements move as two 32-bit words: there is no 64-bit integer array over plain numbers.
  const wordBytes = Math.min(itemBytes, 4);
  const units = itemBytes / wordBytes;
  const from = words(storage.buffer, storage.byteOffset, storage.byteLength / wordBytes, wordBytes);
  const to = words(new ArrayBuffer(count * itemBytes), 0, count * units, wordBytes);
  if (count === 0) return new Uint8Array(to.buffer);
  const { shape, strides } = view;
  const rank = shape.length;
  const inner = rank === 0 ? 1 : shape[rank - 1]!;
  const innerStep = rank === 0 ? 0 : strides[rank - 1]! * units;
  const index = new Array<number>(Math.max(rank - 1, 0)).fill(0);
  let base = view.offset * units;
  let out = 0;
  for (let row = count / inner; row > 0; row--) {
    let s = base;
    if (units === 1) {
      for (let i = 0; i < inner; i++, s += innerStep) to[out++] = from[s]!;
    } else {
      for (let i = 0; i < inner; i++, s += innerStep) {
        for (let u = 0; u < units; u++) to[out++] = from[s + u]!;
      }
    }
    // Advance the index over the outer axes like an odometer, innermost outer axis first.
    for (let axis = rank - 2; axis >= 0; axis--) {
      const step = strides[axis]! * units;
      base += step;
      if (++index[axis]! < shape[axis]!) break;
      base -= step * shape[axis]!;
      index[axis] = 0;
    }
  }
  return new Uint8Array(to.buffer);
}

function words(buffer: ArrayBuffer, byteOffset: number, length: number, wordBytes: number) {
  if (wordBytes === 1) return new Uint8Array(buffer, byteOffset, length);
  if (wordBytes === 2) return new Uint16Array(buffer, byteOffset, length);
  return new Uint32Array(buffer, byteOffset, length);
}
