/**
 * A protobuf wire reader for untrusted files, shared by the Core ML and SentencePiece decoders.
 * It wraps the `BinaryReader` of `@bufbuild/protobuf`, which checks reads against the end of the
 * buffer only, and adds what hostile input needs: every read is given the end of its enclosing
 * message and fails unless it stays inside it, every length is checked before anything is sliced,
 * malformed varints and keys are rejected, and groups are refused rather than skipped by
 * recursion. Problems go to the caller's {@link Fail}, so each format keeps its own error class.
 *
 * @module
 */

import { BinaryReader, WireType } from "./wire.ts";

/**
 * Throws the caller's error for a problem at byte `offset`.
 *
 * @param detail what is wrong, without the file name
 * @param cause the codec's own error, when there is one
 */
export type Fail = (offset: number, detail: string, cause?: unknown) => never;

/** One field's key, as met while walking a message. */
export interface Field {
  /** Field number. */
  readonly no: number;
  /** Wire type. */
  readonly wire: WireType;
  /** Offset of the field's key. */
  readonly offset: number;
  /** End of the enclosing message, which the field must not cross. */
  readonly end: number;
  /** Name of the enclosing message, for errors. */
  readonly message: string;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

const WIRE_NAMES: Record<WireType, string> = {
  [WireType.Varint]: "varint",
  [WireType.Bit64]: "64-bit",
  [WireType.LengthDelimited]: "length-delimited",
  [WireType.StartGroup]: "start-group",
  [WireType.EndGroup]: "end-group",
  [WireType.Bit32]: "32-bit",
};

/**
 * Walks protobuf bytes with strict bounds. Reads take a `what` naming the field for errors
 * (`field 3 (dataType) of TensorType`); where it is optional, a field without one is called by
 * its number alone.
 */
export class BoundedReader {
  /** The caller's {@link Fail}, also for problems it finds in the decoded values. */
  readonly fail: Fail;
  readonly #r: BinaryReader;
  readonly #bytes: Uint8Array;

  /**
   * @param bytes the whole file
   * @param fail throws the caller's error
   */
  constructor(bytes: Uint8Array, fail: Fail) {
    this.#bytes = bytes;
    this.#r = new BinaryReader(bytes);
    this.fail = fail;
  }

  /** Calls `visit` for every field in `[pos, end)`; `visit` must consume or skip the field. */
  fields(end: number, message: string, visit: (f: Field) => void): void {
    while (this.#r.pos < end) {
      const offset = this.#r.pos;
      let key: [number, WireType];
      try {
        key = this.#r.tag();
      } catch (error) {
        this.#within({ no: 0, wire: WireType.Varint, offset, end, message }, this.#r.pos);
        this.fail(offset, `malformed field key at offset ${offset} in ${message}`, error);
      }
      const f = { no: key[0], wire: key[1], offset, end, message };
      this.#within(f, this.#r.pos);
      visit(f);
    }
  }

  /** Fails unless a read of field `f` that ends at `until` stays inside its enclosing message. */
  #within(f: Field, until: number | bigint, length?: bigint): void {
    if (until <= f.end) return;
    const size = this.#bytes.length;
    const quoted = length === undefined ? "" : ` (length ${length})`;
    const what = `${f.no === 0 ? "field key" : `field ${f.no}`} at offset ${f.offset}${quoted}`;
    if (until > size) {
      this.fail(
        f.offset,
        `truncated protobuf: ${what} runs past the end of the file (size ${size})`,
      );
    }
    this.fail(
      f.offset,
      `malformed protobuf: ${what} runs past the end of its enclosing ${f.message}, which ends ` +
        `at offset ${f.end}`,
    );
  }

  #expect(f: Field, wire: WireType, what: string | undefined): void {
    if (f.wire !== wire) {
      const field = what === undefined
        ? `field ${f.no}`
        : `field ${f.no} (${what}) of ${f.message}`;
      this.fail(
        f.offset,
        `malformed protobuf: ${field} at offset ${f.offset} has wire type ${WIRE_NAMES[f.wire]}, ` +
          `expected ${WIRE_NAMES[wire]}`,
      );
    }
  }

  /** Runs one varint read of field `f`, mapping the codec's errors to ours. */
  #varint<T>(f: Field, read: () => T): T {
    let value: T;
    try {
      value = read();
    } catch (error) {
      this.#within(f, this.#r.pos);
      this.fail(f.offset, `malformed varint in field ${f.no} at offset ${f.offset}`, error);
    }
    this.#within(f, this.#r.pos);
    return value;
  }

  /** A varint-encoded int32 or enum. */
  int32(f: Field, what?: string): number {
    this.#expect(f, WireType.Varint, what);
    return this.#varint(f, () => this.#r.int32());
  }

  /** A varint-encoded bool. */
  bool(f: Field, what?: string): boolean {
    this.#expect(f, WireType.Varint, what);
    return this.#varint(f, () => this.#r.bool());
  }

  /** A varint-encoded int64 or uint64 that must be a non-negative safe integer. */
  count(f: Field, what: string): number {
    this.#expect(f, WireType.Varint, what);
    const value = BigInt(this.#varint(f, () => this.#r.int64()));
    if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
      this.fail(
        f.offset,
        `${what} "${value}" in ${f.message} at offset ${f.offset} is out of range`,
      );
    }
    return Number(value);
  }

  /** A 32-bit float. */
  float(f: Field, what?: string): number {
    this.#expect(f, WireType.Bit32, what);
    this.#within(f, this.#r.pos + 4);
    return this.#r.float();
  }

  /** The `[start, end)` payload of a length-delimited field, after checking its length. */
  span(f: Field, what?: string): [number, number] {
    this.#expect(f, WireType.LengthDelimited, what);
    // uint64, not uint32: a 32-bit read would wrap a huge length into a small one.
    const length = BigInt(this.#varint(f, () => this.#r.uint64()));
    const start = this.#r.pos;
    this.#within(f, BigInt(start) + length, length);
    const end = start + Number(length);
    this.#r.pos = end;
    return [start, end];
  }

  /** The raw bytes of a length-delimited field (a view, not a copy). */
  bytes(f: Field, what?: string): Uint8Array {
    const [start, end] = this.span(f, what);
    return this.#bytes.subarray(start, end);
  }

  /** A string field, which must be valid UTF-8. */
  string(f: Field, what: string): string {
    const bytes = this.bytes(f, what);
    try {
      return UTF8.decode(bytes);
    } catch (error) {
      this.fail(
        f.offset,
        `${what} in ${f.message} at offset ${f.offset} is not valid UTF-8`,
        error,
      );
    }
  }

  /** Decodes an embedded message with `decode(end)`, which walks exactly its bytes. */
  message<T>(f: Field, what: string | undefined, decode: (end: number) => T): T {
    const [start, end] = this.span(f, what);
    this.#r.pos = start;
    const result = decode(end);
    this.#r.pos = end;
    return result;
  }

  /** Repeated int64s, packed or not. */
  int64s(f: Field, what: string, each: (v: bigint) => void): void {
    this.#repeated(f, what, () => BigInt(this.#r.int64()), each);
  }

  /** Repeated int32s, packed or not. */
  int32s(f: Field, what: string, each: (v: number) => void): void {
    this.#repeated(f, what, () => this.#r.int32(), each);
  }

  /** Repeated bools, packed or not. */
  bools(f: Field, what: string, each: (v: boolean) => void): void {
    this.#repeated(f, what, () => this.#r.bool(), each);
  }

  #repeated<T>(f: Field, what: string, one: () => T, each: (v: T) => void): void {
    if (f.wire === WireType.Varint) {
      each(this.#varint(f, one));
      return;
    }
    const [start, end] = this.span(f, what);
    const packed = { ...f, end, message: `packed ${what}` };
    this.#r.pos = start;
    while (this.#r.pos < end) each(this.#varint(packed, one));
  }

  /** Repeated floats, packed or not. */
  floats(f: Field, what: string): Float32Array {
    if (f.wire === WireType.Bit32) return Float32Array.of(this.float(f, what));
    const bytes = this.bytes(f, what);
    if (bytes.length % 4 !== 0) {
      this.fail(f.offset, `packed ${what} at offset ${f.offset} is not a whole number of floats`);
    }
    // Copied so the array is aligned; protobuf, like every host llamane runs on, is little-endian.
    return new Float32Array(bytes.slice().buffer);
  }

  /** Skips a field of any wire type except the long-deprecated groups. */
  skip(f: Field): void {
    switch (f.wire) {
      case WireType.Varint:
        this.#varint(f, () => this.#r.uint64());
        return;
      case WireType.Bit64:
      case WireType.Bit32: {
        const until = this.#r.pos + (f.wire === WireType.Bit64 ? 8 : 4);
        this.#within(f, until);
        this.#r.pos = until;
        return;
      }
      case WireType.LengthDelimited:
        this.span(f);
        return;
      default:
        this.fail(
          f.offset,
          `unsupported protobuf: field ${f.no} at offset ${f.offset} uses wire type ` +
            `${WIRE_NAMES[f.wire]} (groups are not supported)`,
        );
    }
  }
}
