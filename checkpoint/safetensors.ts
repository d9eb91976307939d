/**
 * Reader for safetensors files: an 8-byte little-endian header length N, N bytes of JSON mapping
 * each tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the byte
 * buffer after the header) plus an optional `__metadata__` map of strings, then the buffer.
 * As the format's reference implementation does, the tensors must tile the buffer exactly: no
 * overlaps, no holes, nothing after the last one, and each range exactly dtype x shape bytes.
 *
 * @module
 */

import { elementCount } from "../shape.ts";
import { DTYPE_BYTES, isElementDType } from "./dtype.ts";
import { CheckpointFormatError } from "./errors.ts";
import { LazySource, type StoredTensor } from "./lazy_source.ts";
import type { RandomAccessFile } from "./random_access_file.ts";
import { rowMajorStrides } from "./strided_view.ts";
import type { ElementDType, TensorSource } from "./tensor_source.ts";

/** Largest JSON header read, in bytes (the format's reference implementation uses the same cap). */
export const MAX_HEADER_BYTES = 100_000_000;

const HEADER_LENGTH_BYTES = 8;

interface Entry {
  readonly name: string;
  readonly dtype: ElementDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/**
 * Reads the header of the safetensors file `file` and returns its tensors, in the order of their
 * data in the file. Takes ownership of `file`: the returned source closes it, and so does a
 * failure here.
 */
export async function openSafetensors(file: RandomAccessFile): Promise<TensorSource> {
  try {
    return await readSafetensors(file);
  } catch (error) {
    file.close();
    throw error;
  }
}

async function readSafetensors(file: RandomAccessFile): Promise<TensorSource> {
  const { path, size } = file;
  const fail = (offset: number, detail: string) => new CheckpointFormatError(path, offset, detail);
  const prefix = await file.readAt(0, HEADER_LENGTH_BYTES, "safetensors header length");
  const headerLength = new DataView(prefix.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw fail(
      0,
      `safetensors header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  const dataStart = HEADER_LENGTH_BYTES + Number(headerLength);
  if (dataStart > size) {
    throw fail(
      0,
      `truncated safetensors: header of ${headerLength} bytes ` +
        `runs past the end of the file (size ${size})`,
    );
  }
  const headerBytes = await file.readAt(
    HEADER_LENGTH_BYTES,
    dataStart - HEADER_LENGTH_BYTES,
    "safetensors header",
  );
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw fail(
      HEADER_LENGTH_BYTES,
      `safetensors header is not valid UTF-8 JSON: ${(error as Error).message}`,
    );
  }
  if (!isRecord(header)) throw fail(HEADER_LENGTH_BYTES, "safetensors header is not a JSON object");

  const dataSize = size - dataStart;
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isRecord(value) || !Object.values(value).every((v) => typeof v === "string")) {
        throw fail(HEADER_LENGTH_BYTES, `safetensors "__metadata__" must map strings to strings`);
      }
      continue;
    }
    entries.push(
      parseEntry(
        name,
        value,
        dataSize,
        (detail) => fail(HEADER_LENGTH_BYTES, `safetensors tensor "${name}": ${detail}`),
      ),
    );
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const entry of entries) {
    if (entry.begin !== expected) {
      const problem = entry.begin < expected
        ? "overlaps the tensor before it"
        : "leaves a hole after the tensor before it";
      throw fail(
        dataStart + entry.begin,
        `safetensors tensor "${entry.name}" at data offset ${entry.begin} ${problem}, ` +
          `which ends at ${expected}`,
      );
    }
    expected = entry.end;
  }
  if (expected !== dataSize) {
    throw fail(
      dataStart + expected,
      `safetensors data is ${dataSize} bytes but its tensors cover ${expected}: ` +
        `${dataSize - expected} bytes belong to no tensor`,
    );
  }

  const tensors: StoredTensor[] = entries.map((entry) => ({
    info: Object.freeze({
      name: entry.name,
      dtype: entry.dtype,
      shape: Object.freeze([...entry.shape]),
    }),
    view: { offset: 0, shape: entry.shape, strides: rowMajorStrides(entry.shape) },
    storage: {
      read: (start: number, length: number) =>
        file.readAt(dataStart + entry.begin + start, length, `safetensors tensor "${entry.name}"`),
    },
  }));
  return new LazySource(file, tensors, "safetensors");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNatural(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function parseEntry(
  name: string,
  value: unknown,
  dataSize: number,
  fail: (detail: string) => Error,
): Entry {
  if (!isRecord(value)) throw fail("its entry is not an object");
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string" || !isElementDType(dtype)) {
    const supported = Object.keys(DTYPE_BYTES).join(", ");
    throw fail(`unsupported dtype ${JSON.stringify(dtype)}; supported: ${supported}`);
  }
  if (!Array.isArray(shape) || !shape.every(isNatural)) {
    throw fail("shape must be a list of non-negative integers");
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNatural)) {
    throw fail("data_offsets must be two non-negative integers");
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw fail(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataSize) {
    throw fail(`data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes)`);
  }
  const bytes = elementCount(shape) * DTYPE_BYTES[dtype];
  if (end - begin !== bytes) {
    throw fail(
      `shape [${shape.join(", ")}] of ${dtype} needs ${bytes} bytes ` +
        `but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { name, dtype, shape, begin, end };
}
