/**
 * weight.bin, MIL blob storage format version 2: a 64-byte header (blob count, version) followed
 * by one 64-byte metadata record plus data per blob, each record 64-byte aligned. The writer
 * streams blob by blob to disk, so a large model never sits in memory, and stores identical
 * constants once. The reader checks the header and every record it touches before trusting an
 * offset or a size.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  type BlobDType,
  DTYPE_INFO,
  dtypeFromBlobCode,
  type DTypeValues,
  isBlobDType,
  isSubByte,
} from "./dtype.ts";
import { CoremlFormatError } from "./errors.ts";
import { checkTensor, type Tensor, valuesFromBytes, valuesToBytes } from "./tensor.ts";
import { paddingBits } from "./sub_byte.ts";

/** Size of the file header. */
export const BLOB_HEADER_BYTES = 64;
/** Size of each blob's metadata record. */
export const BLOB_METADATA_BYTES = 64;
/** Every metadata record (and so every blob's data) starts at a multiple of this. */
export const BLOB_ALIGNMENT = 64;
/** The only storage format version this module reads and writes. */
export const BLOB_STORAGE_VERSION = 2;
/** First field of every metadata record. */
export const BLOB_SENTINEL = 0xdeadbeef;

/** What a blob's metadata record says, after validation. */
export interface BlobRecord {
  /** File offset of the metadata record: what model.mlmodel refers to. */
  readonly offsetBytes: number;
  /** Element type. */
  readonly dtype: BlobDType;
  /** File offset of the data, always `offsetBytes + 64`. */
  readonly dataOffsetBytes: number;
  /** Length of the data, including a partly used last byte for sub-byte types. */
  readonly sizeBytes: number;
  /** Unused bits at the end of the last byte (sub-byte types), else 0. */
  readonly paddingBits: number;
  /** Number of elements stored. */
  readonly count: number;
}

function align(offset: number): number {
  return Math.ceil(offset / BLOB_ALIGNMENT) * BLOB_ALIGNMENT;
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
}

function headerBytes(count: number): Uint8Array {
  const header = new Uint8Array(BLOB_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint32(0, count, true);
  view.setUint32(4, BLOB_STORAGE_VERSION, true);
  return header;
}

/**
 * Writes weight.bin one blob at a time. Identical blobs (same dtype, element count and SHA-256 of
 * the stored bytes) are written once and share an offset, which is how the functions of a
 * multifunction model share weights.
 *
 * @example Writing two blobs
 * ```ts
 * import assert from "node:assert";
 * import { BlobStorageWriter } from "./blob_storage.ts";
 * const path = await Deno.makeTempFile();
 * using writer = BlobStorageWriter.create(path);
 * const a = writer.append({ dtype: "int4", shape: [5], values: Int8Array.of(1, -1, 7, -8, 3) });
 * const b = writer.append({ dtype: "fp32", shape: [2], values: Float32Array.of(1, 2) });
 * assert.deepStrictEqual([a, b], [64, 192]);
 * ```
 */
export class BlobStorageWriter implements Disposable {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  readonly #offsets = new Map<string, number>();
  readonly #digest = createHash("sha256");
  #end = BLOB_HEADER_BYTES;
  #count = 0;
  #closed = false;

  private constructor(file: Deno.FsFile, path: string) {
    this.#file = file;
    this.#path = path;
  }

  /** Creates (or truncates) the file at `path` and writes an empty header. */
  static create(path: string): BlobStorageWriter {
    const file = Deno.openSync(path, { write: true, create: true, truncate: true });
    writeAll(file, headerBytes(0));
    return new BlobStorageWriter(file, path);
  }

  /** The file being written. */
  get path(): string {
    return this.#path;
  }

  /** Size of the file written so far, in bytes. */
  get sizeBytes(): number {
    return this.#end;
  }

  /** Number of distinct blobs written so far. */
  get blobCount(): number {
    return this.#count;
  }

  /**
   * Appends a tensor's values as one blob, or finds an identical blob already written.
   *
   * @param tensor its shape only sets the element count; weight.bin stores no shape
   * @returns the offset of the blob's metadata record, for a `BlobValue`
   * @throws {TensorShapeError} when the values do not fit the dtype or shape
   */
  append(tensor: Tensor<BlobDType>): number {
    if (this.#closed) throw new Error(`Cannot append to "${this.#path}": the writer is closed`);
    checkTensor(tensor, `blob for "${this.#path}"`);
    const { dtype, values } = tensor;
    const data = valuesToBytes(dtype, values);
    const count = values.length;
    const hash = createHash("sha256").update(data).digest("hex");
    const key = `${dtype}:${count}:${hash}`;
    const known = this.#offsets.get(key);
    if (known !== undefined) return known;

    const offset = align(this.#end);
    const record = new Uint8Array(offset - this.#end + BLOB_METADATA_BYTES);
    const view = new DataView(record.buffer, offset - this.#end);
    view.setUint32(0, BLOB_SENTINEL, true);
    view.setUint32(4, DTYPE_INFO[dtype].blobCode!, true);
    view.setBigUint64(8, BigInt(data.length), true);
    view.setBigUint64(16, BigInt(offset + BLOB_METADATA_BYTES), true);
    view.setBigUint64(
      24,
      BigInt(isSubByte(dtype) ? paddingBits(count, DTYPE_INFO[dtype].bits) : 0),
      true,
    );
    writeAll(this.#file, record);
    writeAll(this.#file, data);
    this.#end = offset + BLOB_METADATA_BYTES + data.length;
    this.#count++;
    this.#offsets.set(key, offset);
    this.#digest.update(`${offset}:${key}\n`);
    return offset;
  }

  /**
   * A SHA-256 (hex) of everything written so far, for content-derived identifiers. Two writers
   * that appended the same blobs in the same order agree.
   */
  digest(): string {
    return this.#digest.copy().digest("hex");
  }

  /** Writes the final blob count into the header and closes the file. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#file.seekSync(0, Deno.SeekMode.Start);
      writeAll(this.#file, headerBytes(this.#count));
    } finally {
      this.#file.close();
    }
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Reads weight.bin. Opening checks the header; every record is validated before its offsets
 * are used, so a hostile file yields a {@link CoremlFormatError}, never an out-of-range read.
 *
 * @example Reading back a blob
 * ```ts
 * import assert from "node:assert";
 * import { BlobStorageReader, BlobStorageWriter } from "./blob_storage.ts";
 * const path = await Deno.makeTempFile();
 * using writer = BlobStorageWriter.create(path);
 * const offset = writer.append({ dtype: "fp32", shape: [2], values: Float32Array.of(1, 2) });
 * writer.close();
 * using reader = BlobStorageReader.open(path);
 * assert.deepStrictEqual(reader.readValues(offset, "fp32"), Float32Array.of(1, 2));
 * ```
 */
export class BlobStorageReader implements Disposable {
  readonly #file: Deno.FsFile;
  /** The file being read. */
  readonly path: string;
  /** The file's size in bytes. */
  readonly sizeBytes: number;
  /** The blob count the header declares. */
  readonly blobCount: number;

  private constructor(file: Deno.FsFile, path: string, sizeBytes: number, blobCount: number) {
    this.#file = file;
    this.path = path;
    this.sizeBytes = sizeBytes;
    this.blobCount = blobCount;
  }

  /**
   * Opens `path` and validates its header.
   *
   * @throws {CoremlFormatError} when the file is shorter than a header, has another version, or
   * declares more blobs than it could hold
   */
  static open(path: string): BlobStorageReader {
    const file = Deno.openSync(path, { read: true });
    try {
      const sizeBytes = file.statSync().size;
      const fail = (offset: number, detail: string): never => {
        throw new CoremlFormatError(path, offset, `Cannot read weights "${path}": ${detail}`);
      };
      if (sizeBytes < BLOB_HEADER_BYTES) {
        fail(
          0,
          `the ${BLOB_HEADER_BYTES}-byte header runs past the end of the file (size ${sizeBytes})`,
        );
      }
      const view = new DataView(readAt(file, 0, BLOB_HEADER_BYTES, fail).buffer);
      const count = view.getUint32(0, true);
      const version = view.getUint32(4, true);
      if (version !== BLOB_STORAGE_VERSION) {
        fail(4, `storage version "${version}" is unsupported, expected ${BLOB_STORAGE_VERSION}`);
      }
      const capacity = Math.floor((sizeBytes - BLOB_HEADER_BYTES) / BLOB_METADATA_BYTES);
      if (count > capacity) {
        fail(
          0,
          `the header declares ${count} blobs but the file (size ${sizeBytes}) holds at most ${capacity}`,
        );
      }
      return new BlobStorageReader(file, path, sizeBytes, count);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  #fail(offset: number, detail: string): never {
    throw new CoremlFormatError(this.path, offset, `Cannot read weights "${this.path}": ${detail}`);
  }

  #readAt(offset: number, length: number): Uint8Array {
    return readAt(this.#file, offset, length, (at, detail) => this.#fail(at, detail));
  }

  /**
   * Reads and validates the metadata record at `offsetBytes`.
   *
   * @param expected when given, the dtype the referring value declares; a different stored
   * dtype is an error
   * @throws {CoremlFormatError} on a misaligned or out-of-range offset, a wrong sentinel, an
   * unknown dtype code, a data range past the end of the file or inconsistent padding
   */
  record(offsetBytes: number, expected?: BlobDType): BlobRecord {
    const at = `blob metadata at offset ${offsetBytes}`;
    if (
      !Number.isSafeInteger(offsetBytes) || offsetBytes < BLOB_HEADER_BYTES ||
      offsetBytes % BLOB_ALIGNMENT !== 0
    ) {
      this.#fail(offsetBytes, `${at} is not a multiple of ${BLOB_ALIGNMENT} past the header`);
    }
    if (offsetBytes + BLOB_METADATA_BYTES > this.sizeBytes) {
      this.#fail(offsetBytes, `${at} runs past the end of the file (size ${this.sizeBytes})`);
    }
    const view = new DataView(this.#readAt(offsetBytes, BLOB_METADATA_BYTES).buffer);
    const sentinel = view.getUint32(0, true);
    if (sentinel !== BLOB_SENTINEL) {
      this.#fail(
        offsetBytes,
        `${at} has sentinel 0x${hex32(sentinel)}, expected 0x${hex32(BLOB_SENTINEL)}: the ` +
          `offset does not point at a blob`,
      );
    }
    const code = view.getUint32(4, true);
    const dtype = dtypeFromBlobCode(code);
    if (dtype === undefined || !isBlobDType(dtype)) {
      this.#fail(offsetBytes + 4, `${at} has unsupported dtype code "${code}"`);
    }
    if (expected !== undefined && dtype !== expected) {
      this.#fail(offsetBytes + 4, `${at} holds ${dtype} data, but the model declares ${expected}`);
    }
    const sizeBytes = view.getBigUint64(8, true);
    const dataOffset = view.getBigUint64(16, true);
    const padding = view.getBigUint64(24, true);
    const dataOffsetBytes = offsetBytes + BLOB_METADATA_BYTES;
    if (dataOffset !== BigInt(dataOffsetBytes)) {
      this.#fail(
        offsetBytes + 16,
        `${at} puts its data at ${dataOffset}, expected ${dataOffsetBytes}`,
      );
    }
    if (BigInt(dataOffsetBytes) + sizeBytes > BigInt(this.sizeBytes)) {
      this.#fail(
        offsetBytes + 8,
        `${at}: ${sizeBytes} bytes of data at offset ${dataOffsetBytes} run past the end of ` +
          `the file (size ${this.sizeBytes})`,
      );
    }
    const size = Number(sizeBytes);
    const { bits } = DTYPE_INFO[dtype];
    const stored = size * 8 - Number(padding);
    const paddingOk = isSubByte(dtype)
      ? padding < 8n && Number(padding) % bits === 0 && stored >= 0
      : padding === 0n && size % (bits / 8) === 0;
    if (!paddingOk) {
      this.#fail(
        offsetBytes + 24,
        `${at}: ${size} bytes of ${dtype} with ${padding} padding bits is not a whole number of ` +
          `elements`,
      );
    }
    return {
      offsetBytes,
      dtype,
      dataOffsetBytes,
      sizeBytes: size,
      paddingBits: Number(padding),
      count: stored / bits,
    };
  }

  /**
   * Walks every blob from the first, as the header's count says, validating each record.
   *
   * @throws {CoremlFormatError} on the first invalid record
   */
  records(): BlobRecord[] {
    const records: BlobRecord[] = [];
    let offset = BLOB_HEADER_BYTES;
    for (let i = 0; i < this.blobCount; i++) {
      const record = this.record(offset);
      records.push(record);
      offset = align(record.dataOffsetBytes + record.sizeBytes);
    }
    return records;
  }

  /**
   * Reads a blob's stored bytes (sub-byte types still packed).
   *
   * @param expected see {@link record}
   */
  readBytes(offsetBytes: number, expected?: BlobDType): { record: BlobRecord; bytes: Uint8Array } {
    const record = this.record(offsetBytes, expected);
    return { record, bytes: this.#readAt(record.dataOffsetBytes, record.sizeBytes) };
  }

  /**
   * Reads a blob's values, one element per slot, after checking the stored dtype.
   *
   * @param count when given, the element count the referring value's shape implies
   */
  readValues<D extends BlobDType>(offsetBytes: number, dtype: D, count?: number): DTypeValues[D] {
    const { record, bytes } = this.readBytes(offsetBytes, dtype);
    if (count !== undefined && record.count !== count) {
      this.#fail(
        offsetBytes,
        `blob metadata at offset ${offsetBytes} holds ${record.count} elements, but the model ` +
          `declares ${count}`,
      );
    }
    return valuesFromBytes(dtype, bytes, record.count);
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function hex32(value: number): string {
  return value.toString(16).toUpperCase().padStart(8, "0");
}

/** Reads exactly `length` bytes at `offset`; the caller has checked the range against the size. */
function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
  fail: (offset: number, detail: string) => never,
): Uint8Array {
  const bytes = new Uint8Array(length);
  file.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < length) {
    const n = file.readSync(bytes.subarray(done));
    if (n === null) fail(offset + done, "the file ended early: was it truncated while being read?");
    done += n;
  }
  return bytes;
}
