/**
 * The lazy view of a checkpoint that every reader implements: tensors are listed from the
 * file's index alone, and a tensor's bytes are read from disk only when asked for.
 *
 * @module
 */

/** Element types a checkpoint may store, named as safetensors names them. */
export type ElementDType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

/** Block-quantized types (GGUF files): each block packs a run of values with its scales. */
export type BlockDType = "Q8_0" | "Q4_0" | "Q4_1" | "Q4_K" | "Q5_K" | "Q6_K";

/** Every type a checkpoint may store. */
export type StorageDType = ElementDType | BlockDType;

/** What a checkpoint's index says about one tensor, known without reading its data. */
export interface TensorInfo {
  /** Canonical name, e.g. `layers.0.attention.wq.weight` (a top-level `model` nesting removed). */
  readonly name: string;
  /** Element type as stored in the file. */
  readonly dtype: StorageDType;
  /** Logical shape, outermost axis first. */
  readonly shape: readonly number[];
}

/** A half-open range `[start, end)` over a tensor's first axis. */
export interface RowRange {
  /** First row read. */
  readonly start: number;
  /** One past the last row read; at most the tensor's first dimension. */
  readonly end: number;
}

/** A tensor's bytes as stored, row-major. */
export interface StoredBytes {
  /** How the bytes encode values. */
  readonly dtype: StorageDType;
  /** Logical shape of the rows read. */
  readonly shape: readonly number[];
  /** The stored bytes. */
  readonly bytes: Uint8Array<ArrayBuffer>;
}

/** The file formats checkpoints are read from. */
export type CheckpointFormat = "pth" | "safetensors" | "gguf";

/** A checkpoint opened for lazy, random-access reading. Close it (or `using` it) when done. */
export interface TensorSource extends Disposable {
  /** The file this source reads. */
  readonly path: string;
  /** The file's format, as found from its content. */
  readonly format: CheckpointFormat;
  /** Every tensor in the checkpoint, in file order. Reads no tensor data. */
  list(): readonly TensorInfo[];
  /** One tensor's description, or `undefined` when the checkpoint has no such tensor. */
  info(name: string): TensorInfo | undefined;
  /**
   * Reads one tensor (or a range of its rows) as contiguous row-major fp32, converting from the
   * stored dtype and resolving strided views. Only the bytes the tensor needs are read.
   */
  readFloat32(name: string, rows?: RowRange): Promise<Float32Array>;
  /**
   * Reads one tensor (or a range of its rows) as stored, without conversion: quantized blocks stay
   * as they are. Only for tensors stored row-major and contiguous (every GGUF and safetensors
   * tensor).
   */
  readStored(name: string, rows?: RowRange): Promise<StoredBytes>;
  /** Releases the file handle. */
  close(): void;
}
