/**
 * Reads checkpoint weights for the exporter, one row range at a time, and counts what has been
 * read so that export can report progress. Also applies the one layout change the exported graph
 * needs: wq and wk rows reordered so that RoPE pairs sit in two halves of each head.
 *
 * @module
 */

import { storedBytes } from "../../checkpoint/dtype.ts";
import type { StorageDType, StoredBytes, TensorSource } from "../../checkpoint/tensor_source.ts";

/**
 * Maps output row `r` of a RoPE-permuted projection to its checkpoint row. Meta checkpoints rotate
 * adjacent pairs (x[2j], x[2j+1]); the exported graph rotates halves (x[j], x[j + hd/2]), which
 * needs no rank-5 reshape. Permuting the rows of wq and wk alike leaves every q.k product, and so
 * attention, unchanged.
 */
export function ropeSourceRow(row: number, headDim: number): number {
  const head = Math.floor(row / headDim);
  const within = row % headDim;
  const half = headDim / 2;
  return head * headDim + (within < half ? 2 * within : 2 * (within - half) + 1);
}

/** A weight as the graph wants it: a checkpoint tensor, optionally with reordered rows. */
export interface WeightRef {
  /** Checkpoint tensor name. */
  readonly name: string;
  /** Rows per RoPE head, when the rows must be reordered for half-split RoPE. */
  readonly ropeHeadDim?: number;
}

/** Reads weights row range by row range, counting tensors started and bytes read. */
export class WeightReader {
  readonly #source: TensorSource;
  readonly #started = new Set<string>();
  #floatsRead = 0;

  constructor(source: TensorSource) {
    this.#source = source;
  }

  /** Distinct checkpoint tensors read from so far. */
  get tensorsStarted(): number {
    return this.#started.size;
  }

  /** fp32 values delivered so far. */
  get floatsRead(): number {
    return this.#floatsRead;
  }

  /** The `[rows, columns]` shape of a 2-D checkpoint tensor. */
  matrixShape(name: string): [number, number] {
    const info = this.#source.info(name);
    if (info === undefined || info.shape.length !== 2) {
      throw new RangeError(`Cannot export: "${name}" is missing or not a matrix`);
    }
    return [info.shape[0]!, info.shape[1]!];
  }

  /** The type a checkpoint tensor is stored in. */
  storedType(name: string): StorageDType {
    const info = this.#source.info(name);
    if (info === undefined) throw new RangeError(`Cannot export: "${name}" is missing`);
    return info.dtype;
  }

  /** A whole 1-D or 2-D tensor as fp32. */
  async all(name: string): Promise<Float32Array> {
    this.#started.add(name);
    const values = await this.#source.readFloat32(name);
    this.#floatsRead += values.length;
    return values;
  }

  /** Rows `[start, end)` of a weight, in the graph's row order, as row-major fp32. */
  async rows(weight: WeightRef, start: number, end: number): Promise<Float32Array> {
    this.#started.add(weight.name);
    const headDim = weight.ropeHeadDim;
    if (headDim === undefined) {
      const values = await this.#source.readFloat32(weight.name, { start, end });
      this.#floatsRead += values.length;
      return values;
    }
    // A permuted row comes from the same head, so read the whole heads the range touches.
    const first = Math.floor(start / headDim) * headDim;
    const last = Math.ceil(end / headDim) * headDim;
    const source = await this.#source.readFloat32(weight.name, { start: first, end: last });
    const columns = source.length / (last - first);
    const out = new Float32Array((end - start) * columns);
    for (let row = start; row < end; row++) {
      const from = (ropeSourceRow(row, headDim) - first) * columns;
      out.set(source.subarray(from, from + columns), (row - start) * columns);
    }
    this.#floatsRead += out.length;
    return out;
  }

  /**
   * Rows `[start, end)` of a weight as stored (quantized blocks untouched), in the graph's row
   * order: reordering moves whole rows, which hold whole blocks.
   */
  async storedRows(weight: WeightRef, start: number, end: number): Promise<StoredBytes> {
    this.#started.add(weight.name);
    const headDim = weight.ropeHeadDim;
    const first = headDim === undefined ? start : Math.floor(start / headDim) * headDim;
    const last = headDim === undefined ? end : Math.ceil(end / headDim) * headDim;
    const stored = await this.#source.readStored(weight.name, { start: first, end: last });
    const columns = stored.shape[1]!;
    if (headDim === undefined) return stored;
    const rowBytes = storedBytes(stored.dtype, columns);
    const bytes = new Uint8Array((end - start) * rowBytes);
    for (let row = start; row < end; row++) {
      const from = (ropeSourceRow(row, headDim) - first) * rowBytes;
      bytes.set(stored.bytes.subarray(from, from + rowBytes), (row - start) * rowBytes);
    }
    return { dtype: stored.dtype, shape: [end - start, columns], bytes };
  }
}
