/**
 * Writing GGUF metadata: a header of key/value pairs and no tensors, the form a bundle keeps a
 * GGUF vocabulary in. Values are written with the types the reader reports (`u32`, `string`,
 * `array<string>`, ...), so whatever {@link readGgufHeader} read writes back to the same bytes.
 *
 * @module
 */

import type { GgufMetadataEntry, GgufValue } from "./header.ts";

/** GGUF value type ids by the names the reader gives them. */
const TYPE_IDS: Readonly<Record<string, number>> = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
};

/** Bytes of each scalar type. */
const SCALAR_SIZES: Readonly<Record<string, number>> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  u64: 8,
  i64: 8,
  f64: 8,
};

/** GGUF's default alignment: the header is padded to it. */
const ALIGNMENT = 32;

/** Little-endian bytes appended to a growing buffer. */
export class GgufBytes {
  #buffer = new Uint8Array(1024);
  #view = new DataView(this.#buffer.buffer);
  #length = 0;

  #reserve(bytes: number): number {
    if (this.#length + bytes > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(this.#buffer.length * 2, this.#length + bytes));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
      this.#view = new DataView(grown.buffer);
    }
    const at = this.#length;
    this.#length += bytes;
    return at;
  }

  /** Raw bytes. */
  bytes(bytes: Uint8Array): void {
    const at = this.#reserve(bytes.length);
    this.#buffer.set(bytes, at);
  }

  u32(value: number): void {
    this.scalar("u32", value);
  }

  u64(value: number | bigint): void {
    this.scalar("u64", value);
  }

  /** A u64 byte length, then the UTF-8 bytes. */
  string(text: string): void {
    const bytes = new TextEncoder().encode(text);
    this.u64(bytes.length);
    this.bytes(bytes);
  }

  /** One value of a scalar or string type named as the reader names it. */
  scalar(type: string, value: GgufValue): void {
    if (type === "string") return this.string(value as string);
    const size = SCALAR_SIZES[type];
    if (size === undefined) throw new TypeError(`unknown GGUF value type "${type}"`);
    // Reserved first: growing the buffer replaces the view.
    const at = this.#reserve(size);
    const v = this.#view;
    const n = value as number;
    switch (type) {
      case "u8":
        return v.setUint8(at, n);
      case "i8":
        return v.setInt8(at, n);
      case "u16":
        return v.setUint16(at, n, true);
      case "i16":
        return v.setInt16(at, n, true);
      case "u32":
        return v.setUint32(at, n, true);
      case "i32":
        return v.setInt32(at, n, true);
      case "f32":
        return v.setFloat32(at, n, true);
      case "bool":
        return v.setUint8(at, value ? 1 : 0);
      case "u64":
        return v.setBigUint64(at, BigInt(value as number | bigint), true);
      case "i64":
        return v.setBigInt64(at, BigInt(value as number | bigint), true);
      default:
        return v.setFloat64(at, n, true);
    }
  }

  /** A metadata entry: key, value type, value (an array as item type, count and items). */
  entry(key: string, { type, value }: GgufMetadataEntry): void {
    this.string(key);
    const itemType = /^array<(.+)>$/.exec(type)?.[1];
    if (itemType === undefined) {
      this.u32(typeId(type));
      this.scalar(type, value);
      return;
    }
    if (!Array.isArray(value)) throw new TypeError(`GGUF metadata "${key}" is not an array`);
    this.u32(TYPE_IDS.array!);
    this.u32(typeId(itemType));
    this.u64(value.length);
    for (const item of value) this.scalar(itemType, item);
  }

  /** Zero bytes up to the next multiple of `alignment`. */
  pad(alignment: number): void {
    this.#reserve((alignment - this.#length % alignment) % alignment);
  }

  /** The bytes written so far. */
  finish(): Uint8Array<ArrayBuffer> {
    return this.#buffer.slice(0, this.#length);
  }
}

function typeId(type: string): number {
  const id = TYPE_IDS[type];
  if (id === undefined || id === TYPE_IDS.array) {
    throw new TypeError(`unknown GGUF value type "${type}"`);
  }
  return id;
}

/**
 * A GGUF file (version 3) of `metadata` alone: no tensors, the header padded to the default
 * alignment.
 *
 * @throws {TypeError} for a type name the reader never gives
 */
export function writeGgufMetadata(
  metadata: Iterable<readonly [string, GgufMetadataEntry]>,
): Uint8Array<ArrayBuffer> {
  const entries = [...metadata];
  const out = new GgufBytes();
  out.bytes(new TextEncoder().encode("GGUF"));
  out.u32(3);
  out.u64(0);
  out.u64(entries.length);
  for (const [key, entry] of entries) out.entry(key, entry);
  out.pad(ALIGNMENT);
  return out.finish();
}
