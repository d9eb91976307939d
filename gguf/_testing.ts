/**
 * A small GGUF writer for tests: headers built field by field, so that a test can make any part of
 * one lie. The valid files it writes are checked against the `gguf` Python package's in
 * checkpoint/gguf_test.ts (which reads the files that package wrote).
 *
 * @module
 */

import type { ByteSource } from "./header.ts";

/** One metadata entry to write: a u32 value, a string, or an array of strings. */
export type TestValue = { u32: number } | { string: string } | { strings: string[] };

/** One tensor-table entry to write, dimensions innermost first as GGUF stores them. */
export interface TestTensor {
  readonly name: string;
  readonly dims: readonly number[];
  readonly typeId: number;
  readonly offset: number;
}

/** What to write. */
export interface TestGguf {
  readonly version?: number;
  readonly tensorCount?: number;
  readonly metadata?: readonly (readonly [string, TestValue])[];
  readonly tensors?: readonly TestTensor[];
  /** Bytes of the data section (after alignment to 32). */
  readonly dataBytes?: number;
}

/** Serializes a GGUF file. */
export function buildGguf(spec: TestGguf): Uint8Array<ArrayBuffer> {
  const parts: number[] = [];
  const u32 = (v: number) => parts.push(v & 255, (v >> 8) & 255, (v >> 16) & 255, v >>> 24);
  const u64 = (v: number) => {
    u32(v % 2 ** 32);
    u32(Math.floor(v / 2 ** 32));
  };
  const string = (s: string) => {
    const bytes = new TextEncoder().encode(s);
    u64(bytes.length);
    parts.push(...bytes);
  };
  const metadata = spec.metadata ?? [];
  const tensors = spec.tensors ?? [];
  parts.push(0x47, 0x47, 0x55, 0x46);
  u32(spec.version ?? 3);
  u64(spec.tensorCount ?? tensors.length);
  u64(metadata.length);
  for (const [key, value] of metadata) {
    string(key);
    if ("u32" in value) {
      u32(4);
      u32(value.u32);
    } else if ("string" in value) {
      u32(8);
      string(value.string);
    } else {
      u32(9);
      u32(8);
      u64(value.strings.length);
      value.strings.forEach(string);
    }
  }
  for (const tensor of tensors) {
    string(tensor.name);
    u32(tensor.dims.length);
    tensor.dims.forEach(u64);
    u32(tensor.typeId);
    u64(tensor.offset);
  }
  while (parts.length % 32 !== 0) parts.push(0);
  return new Uint8Array([...parts, ...new Uint8Array(spec.dataBytes ?? 0)]);
}

/** A {@link ByteSource} over bytes in memory. */
export function memorySource(bytes: Uint8Array, path = "test.gguf"): ByteSource {
  return {
    path,
    size: bytes.length,
    readAt(offset: number, length: number) {
      if (offset + length > bytes.length) {
        return Promise.reject(new RangeError(`read past the end: ${offset} + ${length}`));
      }
      return Promise.resolve(bytes.slice(offset, offset + length));
    },
  };
}
