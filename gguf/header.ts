/**
 * The GGUF container (versions 2 and 3): a little-endian header of metadata key/value pairs and a
 * tensor table, then the tensors' data, each aligned. Every count, length and offset read from the
 * file is checked against the file's size before it is used, so a truncated or lying file gives a
 * {@link GgufFormatError} naming the offset, never a huge allocation or a read past the end.
 *
 * Layout: magic `GGUF`, u32 version, u64 tensor count, u64 metadata count; each metadata entry a
 * string key, a u32 value type and the value; each tensor a string name, u32 dimension count, u64
 * dimensions (innermost first), u32 ggml type and u64 offset into the data section, which starts at
 * the header's end rounded up to `general.alignment` (32 when absent).
 *
 * @module
 */

import {
  type GgmlType,
  ggmlTypeName,
  SUPPORTED_GGML_TYPES,
  supportedGgmlType,
} from "./ggml_types.ts";

/** Positioned reads from a file; `checkpoint/`'s RandomAccessFile is one. */
export interface ByteSource {
  /** The file's path, for messages. */
  readonly path: string;
  /** The file's size in bytes. */
  readonly size: number;
  /** Reads exactly `length` bytes at `offset`; `what` names them in errors. */
  readAt(offset: number, length: number, what: string): Promise<Uint8Array<ArrayBuffer>>;
}

/** A file that is not a well-formed GGUF, or one this reader does not support. */
export class GgufFormatError extends SyntaxError {
  /** The GGUF file. */
  readonly path: string;
  /** Byte offset in the file where the problem was found. */
  readonly offset: number;
  /** What is wrong, without the path. */
  readonly detail: string;

  /** Builds the message `Cannot read GGUF "<path>": <detail>`. */
  constructor(path: string, offset: number, detail: string) {
    super(`Cannot read GGUF "${path}": ${detail}`);
    this.name = "GgufFormatError";
    this.path = path;
    this.offset = offset;
    this.detail = detail;
  }
}

/** A metadata value: numbers (u64/i64 beyond 2^53 as bigint), booleans, strings, or arrays. */
export type GgufValue = number | bigint | boolean | string | readonly GgufValue[];

/** One metadata entry: its GGUF type (e.g. `u32`, `string`, `array<string>`) and its value. */
export interface GgufMetadataEntry {
  /** The stored type, arrays written `array<item type>`. */
  readonly type: string;
  /** The value. */
  readonly value: GgufValue;
}

/** One tensor of the table. */
export interface GgufTensorInfo {
  /** The tensor's name, e.g. `blk.0.attn_q.weight`. */
  readonly name: string;
  /** Logical shape, outermost axis first (GGUF stores dimensions innermost first). */
  readonly shape: readonly number[];
  /** Its ggml type. */
  readonly type: GgmlType;
  /** Absolute byte offset of its data in the file. */
  readonly offset: number;
  /** Bytes of data. */
  readonly byteLength: number;
}

/** A parsed GGUF header. */
export interface GgufHeader {
  /** Format version (2 or 3). */
  readonly version: number;
  /** Metadata entries, in file order. */
  readonly metadata: ReadonlyMap<string, GgufMetadataEntry>;
  /** The tensor table, in file order. */
  readonly tensors: readonly GgufTensorInfo[];
  /** Absolute offset where the data section starts. */
  readonly dataOffset: number;
}

/** Largest header read (metadata and tensor table); large vocabularies take about 10 MB. */
export const MAX_HEADER_BYTES = 512 * 1024 * 1024;
/** Most dimensions a tensor may have (ggml's limit). */
export const MAX_DIMENSIONS = 4;

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
const FIRST_WINDOW = 1 << 20;

const SCALAR_BYTES: Readonly<Record<number, readonly [string, number]>> = {
  0: ["u8", 1],
  1: ["i8", 1],
  2: ["u16", 2],
  3: ["i16", 2],
  4: ["u32", 4],
  5: ["i32", 4],
  6: ["f32", 4],
  7: ["bool", 1],
  10: ["u64", 8],
  11: ["i64", 8],
  12: ["f64", 8],
};
const STRING = 8;
const ARRAY = 9;

/** Thrown inside the parser when the window read so far ends before the header does. */
class WindowExhausted extends Error {}

/** A cursor over the first bytes of the file; every read is checked against the file size. */
class Cursor {
  #view: DataView;
  #bytes: Uint8Array;
  // A leading U+FEFF is text (a vocabulary has it as a token), not a byte order mark to drop.
  #decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  pos = 0;

  constructor(bytes: Uint8Array, readonly path: string, readonly fileSize: number) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(detail: string, at = this.pos): GgufFormatError {
    return new GgufFormatError(this.path, at, detail);
  }

  /** Checks that `length` bytes of `what` exist at the cursor, in the file and in the window. */
  need(length: number, what: string): void {
    if (this.pos + length > this.fileSize) {
      throw this.fail(
        `truncated file: ${what} at offset ${this.pos} (${length} bytes) runs past the end of ` +
          `the file (size ${this.fileSize})`,
      );
    }
    if (this.pos + length > this.#bytes.length) throw new WindowExhausted();
  }

  u32(what: string): number {
    this.need(4, what);
    const value = this.#view.getUint32(this.pos, true);
    this.pos += 4;
    return value;
  }

  /** A u64 that must be a safe integer (counts, lengths, offsets, dimensions). */
  count(what: string): number {
    this.need(8, what);
    const value = this.#view.getBigUint64(this.pos, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(`${what} ${value} is too large`);
    this.pos += 8;
    return Number(value);
  }

  string(what: string): string {
    const at = this.pos;
    const length = this.count(`length of ${what}`);
    if (this.pos + length > this.fileSize) {
      throw this.fail(
        `${what} at offset ${at} claims ${length} bytes but the file ends at ${this.fileSize}`,
        at,
      );
    }
    this.need(length, what);
    const text = this.#decoder.decode(this.#bytes.subarray(this.pos, this.pos + length));
    this.pos += length;
    return text;
  }

  scalar(type: number, what: string): number | bigint | boolean {
    const [name, bytes] = SCALAR_BYTES[type]!;
    this.need(bytes, what);
    const v = this.#view;
    const p = this.pos;
    this.pos += bytes;
    switch (name) {
      case "u8":
        return v.getUint8(p);
      case "i8":
        return v.getInt8(p);
      case "u16":
        return v.getUint16(p, true);
      case "i16":
        return v.getInt16(p, true);
      case "u32":
        return v.getUint32(p, true);
      case "i32":
        return v.getInt32(p, true);
      case "f32":
        return v.getFloat32(p, true);
      case "bool":
        return v.getUint8(p) !== 0;
      case "u64":
        return safeNumber(v.getBigUint64(p, true));
      case "i64":
        return safeNumber(v.getBigInt64(p, true));
      default:
        return v.getFloat64(p, true);
    }
  }
}

function safeNumber(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
}

function typeName(type: number): string {
  if (type === STRING) return "string";
  if (type === ARRAY) return "array";
  return SCALAR_BYTES[type]?.[0] ?? `type ${type}`;
}

function readValue(cursor: Cursor, type: number, key: string): GgufMetadataEntry {
  if (type === STRING) return { type: "string", value: cursor.string(`metadata "${key}"`) };
  if (SCALAR_BYTES[type] !== undefined) {
    return { type: typeName(type), value: cursor.scalar(type, `metadata "${key}"`) };
  }
  if (type !== ARRAY) {
    throw cursor.fail(`metadata "${key}" has unknown value type ${type}`, cursor.pos - 4);
  }
  const itemType = cursor.u32(`item type of metadata "${key}"`);
  if (itemType !== STRING && SCALAR_BYTES[itemType] === undefined) {
    throw cursor.fail(
      `metadata "${key}" is an array of ${typeName(itemType)}, which GGUF readers do not support`,
      cursor.pos - 4,
    );
  }
  const at = cursor.pos;
  const length = cursor.count(`length of metadata "${key}"`);
  // Each item takes at least its scalar size (a string at least its 8-byte length).
  const smallest = itemType === STRING ? 8 : SCALAR_BYTES[itemType]![1];
  if (length * smallest > cursor.fileSize - cursor.pos) {
    throw cursor.fail(
      `metadata "${key}" claims ${length} items but only ${
        cursor.fileSize - cursor.pos
      } bytes remain in the file`,
      at,
    );
  }
  const items: GgufValue[] = new Array(length);
  for (let i = 0; i < length; i++) {
    items[i] = itemType === STRING
      ? cursor.string(`item ${i} of metadata "${key}"`)
      : cursor.scalar(itemType, `item ${i} of metadata "${key}"`);
  }
  return { type: `array<${typeName(itemType)}>`, value: items };
}

interface RawTensor {
  readonly name: string;
  readonly shape: number[];
  readonly type: GgmlType;
  readonly relativeOffset: number;
  readonly byteLength: number;
  readonly at: number;
}

function readTensorInfo(cursor: Cursor, index: number): RawTensor {
  const at = cursor.pos;
  const name = cursor.string(`name of tensor ${index}`);
  const what = `tensor "${name}"`;
  const rank = cursor.u32(`dimension count of ${what}`);
  if (rank > MAX_DIMENSIONS) {
    throw cursor.fail(`${what} has ${rank} dimensions; at most ${MAX_DIMENSIONS} are allowed`, at);
  }
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(cursor.count(`dimension ${i} of ${what}`));
  const typeId = cursor.u32(`type of ${what}`);
  const type = supportedGgmlType(typeId);
  if (type === undefined) {
    throw cursor.fail(
      `${what} has ggml type ${ggmlTypeName(typeId)} (id ${typeId}), which is not supported; ` +
        `supported: ${Object.keys(SUPPORTED_GGML_TYPES).join(", ")}`,
      at,
    );
  }
  const relativeOffset = cursor.count(`data offset of ${what}`);
  const { blockElements, blockBytes } = SUPPORTED_GGML_TYPES[type];
  const rowLength = dims[0] ?? 1;
  if (rowLength % blockElements !== 0) {
    throw cursor.fail(
      `${what} has rows of ${rowLength} values, not a whole number of ${type} blocks of ` +
        `${blockElements}`,
      at,
    );
  }
  let byteLength = (rowLength / blockElements) * blockBytes;
  for (const d of dims.slice(1)) byteLength *= d;
  if (!Number.isSafeInteger(byteLength) || byteLength > cursor.fileSize) {
    throw cursor.fail(
      `${what} of shape [${dims.toReversed().join(", ")}] needs more bytes than the file has ` +
        `(${cursor.fileSize})`,
      at,
    );
  }
  return { name, shape: dims.toReversed(), type, relativeOffset, byteLength, at };
}

function parse(cursor: Cursor): GgufHeader {
  const magic = cursor.u32("magic");
  if (magic !== MAGIC) throw cursor.fail('not a GGUF file (its first bytes are not "GGUF")', 0);
  const version = cursor.u32("version");
  if (version !== 2 && version !== 3) {
    const hint = version === 1
      ? ": version 1 files predate 64-bit counts; convert it again with a recent llama.cpp"
      : (version & 0xffff) === 0
      ? ": it looks big-endian, which is not supported"
      : "";
    throw cursor.fail(`unsupported GGUF version ${version} (supported: 2, 3)${hint}`, 4);
  }
  const tensorCount = cursor.count("tensor count");
  const metadataCount = cursor.count("metadata count");
  // The smallest tensor entry takes 8 (name length) + 4 + 4 + 8 bytes, a metadata entry 8 + 4 + 1.
  const remaining = cursor.fileSize - cursor.pos;
  if (tensorCount * 24 + metadataCount * 13 > remaining) {
    throw cursor.fail(
      `the header claims ${tensorCount} tensors and ${metadataCount} metadata entries, more ` +
        `than the ${remaining} bytes left in the file can hold`,
      8,
    );
  }

  const metadata = new Map<string, GgufMetadataEntry>();
  for (let i = 0; i < metadataCount; i++) {
    const at = cursor.pos;
    const key = cursor.string(`key of metadata entry ${i}`);
    if (metadata.has(key)) throw cursor.fail(`metadata key "${key}" appears twice`, at);
    const type = cursor.u32(`value type of metadata "${key}"`);
    metadata.set(key, readValue(cursor, type, key));
  }

  const alignmentEntry = metadata.get("general.alignment");
  const alignment = alignmentEntry?.value ?? DEFAULT_ALIGNMENT;
  if (
    typeof alignment !== "number" || !Number.isSafeInteger(alignment) || alignment <= 0 ||
    alignment % 8 !== 0
  ) {
    throw cursor.fail(
      `general.alignment must be a positive multiple of 8, got ${String(alignment)}`,
      0,
    );
  }

  const raw: RawTensor[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const tensor = readTensorInfo(cursor, i);
    if (names.has(tensor.name)) {
      throw cursor.fail(`tensor "${tensor.name}" appears twice`, tensor.at);
    }
    names.add(tensor.name);
    raw.push(tensor);
  }
  const dataOffset = Math.ceil(cursor.pos / alignment) * alignment;
  const tensors = raw.map((t) => {
    if (t.relativeOffset % alignment !== 0) {
      throw cursor.fail(
        `tensor "${t.name}" has data offset ${t.relativeOffset}, not a multiple of the ` +
          `alignment ${alignment}`,
        t.at,
      );
    }
    const offset = dataOffset + t.relativeOffset;
    if (offset + t.byteLength > cursor.fileSize) {
      throw cursor.fail(
        `tensor "${t.name}" (${t.byteLength} bytes at offset ${offset}) runs past the end of ` +
          `the file (size ${cursor.fileSize})`,
        t.at,
      );
    }
    return Object.freeze({
      name: t.name,
      shape: Object.freeze(t.shape),
      type: t.type,
      offset,
      byteLength: t.byteLength,
    });
  });
  const byOffset = tensors.toSorted((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const before = byOffset[i - 1]!;
    const tensor = byOffset[i]!;
    if (tensor.offset < before.offset + before.byteLength) {
      throw cursor.fail(
        `tensor "${tensor.name}" at offset ${tensor.offset} overlaps tensor "${before.name}" ` +
          `(${before.byteLength} bytes at offset ${before.offset})`,
        tensor.offset,
      );
    }
  }
  return { version, metadata, tensors: Object.freeze(tensors), dataOffset };
}

/**
 * Reads and checks a GGUF file's header: metadata and tensor table. Reads a first megabyte, and
 * more (doubling) only while the header goes on, up to {@link MAX_HEADER_BYTES}.
 *
 * @throws {GgufFormatError} when the file is not a well-formed GGUF of version 2 or 3, or names a
 *   tensor type this reader does not support
 */
export async function readGgufHeader(source: ByteSource): Promise<GgufHeader> {
  for (let window = FIRST_WINDOW;; window *= 2) {
    const length = Math.min(window, source.size, MAX_HEADER_BYTES);
    const bytes = await source.readAt(0, length, "GGUF header");
    try {
      return parse(new Cursor(bytes, source.path, source.size));
    } catch (error) {
      if (!(error instanceof WindowExhausted)) throw error;
      if (length === MAX_HEADER_BYTES) {
        throw new GgufFormatError(
          source.path,
          length,
          `the header goes on past ${MAX_HEADER_BYTES} bytes, the most this reader accepts`,
        );
      }
    }
  }
}

/**
 * Parses the header of a whole GGUF file held in memory, as {@link readGgufHeader} does a file's.
 *
 * @param path the file's name, for messages
 * @throws {GgufFormatError} as {@link readGgufHeader} does
 */
export function parseGgufHeader(bytes: Uint8Array, path: string): GgufHeader {
  // The window is the whole file, so every read past it fails as past the file's end.
  return parse(new Cursor(bytes, path, bytes.length));
}

/** A metadata value of `header` by key, or `undefined`. */
export function metadataValue(header: GgufHeader, key: string): GgufValue | undefined {
  return header.metadata.get(key)?.value;
}
