/**
 * GGUF files for tests, built field by field with writer.ts's encoder, so that a test can make any
 * part of one lie. The valid files it writes are checked against the `gguf` Python package's in
 * checkpoint/gguf_test.ts (which reads the files that package wrote).
 *
 * @module
 */

import type { ByteSource, GgufMetadataEntry } from "./header.ts";
import { GgufBytes } from "./writer.ts";

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

/** The entry {@link GgufBytes.entry} writes for a test value. */
function entryOf(value: TestValue): GgufMetadataEntry {
  if ("u32" in value) return { type: "u32", value: value.u32 };
  if ("string" in value) return { type: "string", value: value.string };
  return { type: "array<string>", value: value.strings };
}

/** Serializes a GGUF file. */
export function buildGguf(spec: TestGguf): Uint8Array<ArrayBuffer> {
  const metadata = spec.metadata ?? [];
  const tensors = spec.tensors ?? [];
  const out = new GgufBytes();
  out.bytes(new TextEncoder().encode("GGUF"));
  out.u32(spec.version ?? 3);
  out.u64(spec.tensorCount ?? tensors.length);
  out.u64(metadata.length);
  for (const [key, value] of metadata) out.entry(key, entryOf(value));
  for (const tensor of tensors) {
    out.string(tensor.name);
    out.u32(tensor.dims.length);
    tensor.dims.forEach((dim) => out.u64(dim));
    out.u32(tensor.typeId);
    out.u64(tensor.offset);
  }
  out.pad(32);
  out.bytes(new Uint8Array(spec.dataBytes ?? 0));
  return out.finish();
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
