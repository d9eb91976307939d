/**
 * A zip reader for the archives torch.save writes: it reads the end-of-central-directory records
 * (zip64 included), then the central directory, and reads an entry's bytes only when asked, by
 * offset. torch.save stores its members uncompressed; a deflated member (what re-zipping a
 * checkpoint with another tool gives) is accepted up to {@link MAX_INFLATED_BYTES}, inflated whole
 * with `DecompressionStream`, since its bytes cannot be addressed without inflating them.
 *
 * torch writes each local header with zero sizes and a data descriptor, so sizes and CRCs are
 * taken from the central directory and a local header only gives the start of the data.
 *
 * @module
 */

import { crc32 } from "./crc32.ts";
import { CheckpointFormatError } from "./errors.ts";
import type { RandomAccessFile } from "./random_access_file.ts";

/** Largest central directory read, in bytes: a checkpoint's takes a few KiB per 100 tensors. */
export const MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024;
/** Largest deflated entry inflated, in uncompressed bytes. */
export const MAX_INFLATED_BYTES = 16 * 1024 * 1024;

const EOCD_SIGNATURE = 0x06054b50;
const EOCD_BYTES = 22;
const MAX_COMMENT_BYTES = 0xffff;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_LOCATOR_BYTES = 20;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const ZIP64_EOCD_BYTES = 56;
const CENTRAL_SIGNATURE = 0x02014b50;
const CENTRAL_BYTES = 46;
const LOCAL_SIGNATURE = 0x04034b50;
const LOCAL_BYTES = 30;
const ZIP64_EXTRA_ID = 0x0001;
// A 32-bit size or offset field holding this value defers to the zip64 extra field (16-bit
// counts to the zip64 end of central directory).
const ZIP64_MARKER_32 = 0xffffffff;
const ZIP64_MARKER_16 = 0xffff;
const FLAG_ENCRYPTED = 1;
const METHOD_STORED = 0;
const METHOD_DEFLATED = 8;

/** One member of the archive, as the central directory describes it. */
export interface ZipEntry {
  /** Path inside the archive, e.g. `archive/data/0`. */
  readonly name: string;
  /** The name's bytes as stored, which the local header must repeat. */
  readonly nameBytes: Uint8Array;
  /** Compression method: 0 stored, 8 deflated. */
  readonly method: number;
  /** General-purpose flags (bit 0: encrypted). */
  readonly flags: number;
  /** CRC-32 of the uncompressed bytes. */
  readonly crc32: number;
  /** Size of the stored bytes. */
  readonly compressedSize: number;
  /** Size once uncompressed. */
  readonly size: number;
  /** Offset of the entry's local header in the file. */
  readonly headerOffset: number;
}

/** Where the central directory is, from the end-of-central-directory records. */
interface Directory {
  readonly offset: number;
  readonly size: number;
  readonly count: number;
  /** The central directory must end here: where the (zip64) end record starts. */
  readonly limit: number;
}

const utf8 = new TextDecoder();

/** A zip archive opened for random access. Owns no file handle: close the file yourself. */
export class ZipArchive {
  /** The archive's file path. */
  readonly path: string;
  /** Every entry, in central-directory order. */
  readonly entries: readonly ZipEntry[];
  #file: RandomAccessFile;
  #byName: ReadonlyMap<string, ZipEntry>;
  #centralOffset: number;
  #dataOffsets = new Map<ZipEntry, Promise<number>>();

  private constructor(file: RandomAccessFile, entries: ZipEntry[], centralOffset: number) {
    this.#file = file;
    this.path = file.path;
    this.entries = entries;
    this.#byName = new Map(entries.map((entry) => [entry.name, entry]));
    this.#centralOffset = centralOffset;
  }

  /** Reads the end records and the central directory of `file`. */
  static async open(file: RandomAccessFile): Promise<ZipArchive> {
    const directory = await readDirectory(file);
    const bytes = await file.readAt(directory.offset, directory.size, "zip central directory");
    return new ZipArchive(
      file,
      parseCentralDirectory(file.path, bytes, directory),
      directory.offset,
    );
  }

  /** The entry called `name`, if any. */
  get(name: string): ZipEntry | undefined {
    return this.#byName.get(name);
  }

  /** Offset in the file where `entry`'s stored bytes start, read from its local header once. */
  dataOffset(entry: ZipEntry): Promise<number> {
    let offset = this.#dataOffsets.get(entry);
    if (offset === undefined) {
      offset = this.#readDataOffset(entry);
      this.#dataOffsets.set(entry, offset);
    }
    return offset;
  }

  /**
   * Reads `length` uncompressed bytes of `entry` from `start`, into a buffer of exactly that size.
   * A stored entry is read in place; a deflated one is inflated whole and checked against its CRC.
   */
  async read(entry: ZipEntry, start: number, length: number): Promise<Uint8Array<ArrayBuffer>> {
    if (start < 0 || length < 0 || start + length > entry.size) {
      throw new RangeError(
        `Cannot read zip entry "${entry.name}": ` +
          `bytes ${start} to ${start + length} lie outside its ${entry.size} bytes`,
      );
    }
    if (entry.flags & FLAG_ENCRYPTED) {
      throw this.#error(
        entry.headerOffset,
        `zip entry "${entry.name}" is encrypted, which checkpoints never are`,
      );
    }
    if (entry.method === METHOD_STORED) {
      const offset = await this.dataOffset(entry);
      return this.#file.readAt(offset + start, length, `zip entry "${entry.name}"`);
    }
    if (entry.method === METHOD_DEFLATED) {
      const whole = await this.#inflate(entry);
      return start === 0 && length === whole.length ? whole : whole.slice(start, start + length);
    }
    throw this.#error(
      entry.headerOffset,
      `zip entry "${entry.name}" uses compression method ${entry.method}; ` +
        "only stored (0) and deflated (8) are supported",
    );
  }

  /** Reads all of `entry` and checks its CRC-32. */
  async readAll(entry: ZipEntry): Promise<Uint8Array<ArrayBuffer>> {
    const bytes = await this.read(entry, 0, entry.size);
    if (entry.method === METHOD_STORED) this.#checkCrc(entry, bytes);
    return bytes;
  }

  async #readDataOffset(entry: ZipEntry): Promise<number> {
    const nameBytes = entry.nameBytes.length;
    const header = await this.#file.readAt(
      entry.headerOffset,
      LOCAL_BYTES + nameBytes,
      `local header of zip entry "${entry.name}"`,
    );
    const view = new DataView(header.buffer);
    if (view.getUint32(0, true) !== LOCAL_SIGNATURE) {
      throw this.#error(
        entry.headerOffset,
        `corrupt zip: no local header signature at offset ${entry.headerOffset} ` +
          `for entry "${entry.name}"`,
      );
    }
    const nameLength = view.getUint16(26, true);
    const extraLength = view.getUint16(28, true);
    const localName = header.subarray(LOCAL_BYTES);
    if (nameLength !== nameBytes || !localName.every((byte, i) => byte === entry.nameBytes[i])) {
      throw this.#error(
        entry.headerOffset,
        `corrupt zip: local header at offset ${entry.headerOffset} names ` +
          `${JSON.stringify(utf8.decode(localName))}, ` +
          `the central directory ${JSON.stringify(entry.name)}`,
      );
    }
    const start = entry.headerOffset + LOCAL_BYTES + nameLength + extraLength;
    if (start + entry.compressedSize > this.#centralOffset) {
      throw this.#error(
        start,
        `corrupt zip: data of entry "${entry.name}" at offset ${start} ` +
          `(${entry.compressedSize} bytes) runs into ` +
          `the central directory at offset ${this.#centralOffset}`,
      );
    }
    return start;
  }

  async #inflate(entry: ZipEntry): Promise<Uint8Array<ArrayBuffer>> {
    if (entry.size > MAX_INFLATED_BYTES || entry.compressedSize > 2 * MAX_INFLATED_BYTES) {
      throw this.#error(
        entry.headerOffset,
        `zip entry "${entry.name}" is deflated and ${entry.size} bytes long; ` +
          `deflated entries are read only up to ${MAX_INFLATED_BYTES} bytes: ` +
          "save the checkpoint with torch.save, which stores entries uncompressed",
      );
    }
    const offset = await this.dataOffset(entry);
    const compressed = await this.#file.readAt(
      offset,
      entry.compressedSize,
      `zip entry "${entry.name}"`,
    );
    const out = new Uint8Array(entry.size);
    let filled = 0;
    try {
      const stream = new Blob([compressed]).stream().pipeThrough(
        new DecompressionStream("deflate-raw"),
      );
      for await (const chunk of stream) {
        // Stop as soon as the entry inflates past its declared size: a zip bomb never gets further.
        if (filled + chunk.length > out.length) {
          throw this.#error(
            offset,
            `corrupt zip: entry "${entry.name}" inflates to more than ` +
              `its declared ${entry.size} bytes`,
          );
        }
        out.set(chunk, filled);
        filled += chunk.length;
      }
    } catch (error) {
      if (error instanceof CheckpointFormatError) throw error;
      throw this.#error(
        offset,
        `corrupt zip: entry "${entry.name}" does not inflate: ${(error as Error).message}`,
      );
    }
    if (filled !== out.length) {
      throw this.#error(
        offset,
        `corrupt zip: entry "${entry.name}" inflates to ${filled} bytes, declared ${entry.size}`,
      );
    }
    this.#checkCrc(entry, out);
    return out;
  }

  #checkCrc(entry: ZipEntry, bytes: Uint8Array): void {
    const actual = crc32(bytes);
    if (actual !== entry.crc32) {
      throw this.#error(
        entry.headerOffset,
        `corrupt zip: entry "${entry.name}" has CRC-32 ${hex32(actual)}, ` +
          `the central directory says ${hex32(entry.crc32)}`,
      );
    }
  }

  #error(offset: number, detail: string): CheckpointFormatError {
    return new CheckpointFormatError(this.#file.path, offset, detail);
  }
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

/** Reads a little-endian u64 that must fit in a JS number (any real file offset does). */
function u64(path: string, view: DataView, at: number, fileOffset: number, what: string): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CheckpointFormatError(
      path,
      fileOffset,
      `corrupt zip: ${what} ${value} at offset ${fileOffset} is too large`,
    );
  }
  return Number(value);
}

async function readView(file: RandomAccessFile, offset: number, length: number, what: string) {
  return new DataView((await file.readAt(offset, length, what)).buffer);
}

/** Finds the end-of-central-directory record, following the zip64 locator when there is one. */
async function readDirectory(file: RandomAccessFile): Promise<Directory> {
  const { path, size } = file;
  const fail = (offset: number, detail: string) => new CheckpointFormatError(path, offset, detail);
  if (size < EOCD_BYTES) {
    throw fail(
      0,
      `truncated zip: the file has ${size} bytes, ` +
        `fewer than the ${EOCD_BYTES} of an end of central directory record`,
    );
  }
  // The record is the last thing in the file, followed only by a comment of up to 64 KiB.
  const tailLength = Math.min(size, EOCD_BYTES + MAX_COMMENT_BYTES);
  const tailStart = size - tailLength;
  const tail = await file.readAt(tailStart, tailLength, "zip end of central directory");
  const tailView = new DataView(tail.buffer);
  let at = -1;
  for (let i = tailLength - EOCD_BYTES; i >= 0; i--) {
    if (
      tailView.getUint32(i, true) === EOCD_SIGNATURE &&
      i + EOCD_BYTES + tailView.getUint16(i + 20, true) <= tailLength
    ) {
      at = i;
      break;
    }
  }
  if (at < 0) {
    throw fail(
      size,
      `truncated zip: no end of central directory record in the last ${tailLength} bytes; ` +
        "the file was cut short or is not a zip archive",
    );
  }
  const eocdOffset = tailStart + at;
  const count = tailView.getUint16(at + 10, true);
  const cdSize = tailView.getUint32(at + 12, true);
  const cdOffset = tailView.getUint32(at + 16, true);

  const locatorOffset = eocdOffset - ZIP64_LOCATOR_BYTES;
  const locator = locatorOffset >= 0
    ? await readView(
      file,
      locatorOffset,
      ZIP64_LOCATOR_BYTES,
      "zip64 end of central directory locator",
    )
    : undefined;
  if (locator === undefined || locator.getUint32(0, true) !== ZIP64_LOCATOR_SIGNATURE) {
    if (count === ZIP64_MARKER_16 || cdSize === ZIP64_MARKER_32 || cdOffset === ZIP64_MARKER_32) {
      throw fail(
        eocdOffset,
        `corrupt zip: the end of central directory record at offset ${eocdOffset} ` +
          "defers to zip64 records, but there is no zip64 locator before it",
      );
    }
    return checkDirectory(path, { offset: cdOffset, size: cdSize, count, limit: eocdOffset });
  }

  const zip64Offset = u64(
    path,
    locator,
    8,
    locatorOffset + 8,
    "zip64 end of central directory offset",
  );
  if (zip64Offset + ZIP64_EOCD_BYTES > locatorOffset) {
    throw fail(
      locatorOffset,
      `corrupt zip: zip64 end of central directory record at offset ${zip64Offset} ` +
        `(${ZIP64_EOCD_BYTES} bytes) ` +
        `overlaps its locator at offset ${locatorOffset}`,
    );
  }
  const record = await readView(
    file,
    zip64Offset,
    ZIP64_EOCD_BYTES,
    "zip64 end of central directory",
  );
  if (record.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE) {
    throw fail(
      zip64Offset,
      `corrupt zip: no zip64 end of central directory record at offset ${zip64Offset}`,
    );
  }
  return checkDirectory(path, {
    count: u64(path, record, 32, zip64Offset + 32, "zip64 entry count"),
    size: u64(path, record, 40, zip64Offset + 40, "zip64 central directory size"),
    offset: u64(path, record, 48, zip64Offset + 48, "zip64 central directory offset"),
    limit: zip64Offset,
  });
}

function checkDirectory(path: string, directory: Directory): Directory {
  const { offset, size, count, limit } = directory;
  if (offset + size > limit) {
    throw new CheckpointFormatError(
      path,
      offset,
      `corrupt zip: central directory at offset ${offset} (${size} bytes) ` +
        `runs past the end of central directory record at offset ${limit}`,
    );
  }
  if (size > MAX_CENTRAL_DIRECTORY_BYTES) {
    throw new CheckpointFormatError(
      path,
      offset,
      `zip central directory is ${size} bytes, ` +
        `more than the ${MAX_CENTRAL_DIRECTORY_BYTES} bytes a checkpoint could need`,
    );
  }
  if (count * CENTRAL_BYTES > size) {
    throw new CheckpointFormatError(
      path,
      offset,
      `corrupt zip: ${count} entries cannot fit ` +
        `in a central directory of ${size} bytes at offset ${offset}`,
    );
  }
  return directory;
}

function parseCentralDirectory(
  path: string,
  bytes: Uint8Array<ArrayBuffer>,
  directory: Directory,
): ZipEntry[] {
  const view = new DataView(bytes.buffer);
  const fail = (at: number, detail: string) =>
    new CheckpointFormatError(
      path,
      directory.offset + at,
      `corrupt zip central directory: ${detail}`,
    );
  const entries: ZipEntry[] = [];
  const names = new Set<string>();
  let p = 0;
  for (let index = 0; index < directory.count; index++) {
    const where = `entry ${index} at offset ${directory.offset + p}`;
    if (p + CENTRAL_BYTES > bytes.length) {
      throw fail(p, `${where} runs past the end of the directory`);
    }
    if (view.getUint32(p, true) !== CENTRAL_SIGNATURE) {
      throw fail(p, `${where} has no central header signature`);
    }
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    const nameStart = p + CENTRAL_BYTES;
    const extraStart = nameStart + nameLength;
    const end = extraStart + extraLength + commentLength;
    if (end > bytes.length) {
      throw fail(p, `${where} (${end - p} bytes) runs past the end of the directory`);
    }
    const nameBytes = bytes.slice(nameStart, extraStart);
    const name = utf8.decode(nameBytes);

    let size = view.getUint32(p + 24, true);
    let compressedSize = view.getUint32(p + 20, true);
    let headerOffset = view.getUint32(p + 42, true);
    if (
      size === ZIP64_MARKER_32 || compressedSize === ZIP64_MARKER_32 ||
      headerOffset === ZIP64_MARKER_32
    ) {
      const zip64 = findExtra(view, extraStart, extraLength, ZIP64_EXTRA_ID);
      if (zip64 === undefined) {
        throw fail(p, `${where} ("${name}") defers to a zip64 extra field it does not have`);
      }
      // The zip64 field holds, in this order, only the values whose 32-bit fields are saturated.
      let q = zip64.start;
      const next = (what: string): number => {
        if (q + 8 > zip64.end) {
          throw fail(q, `zip64 extra field of "${name}" is too short for its ${what}`);
        }
        const value = u64(path, view, q, directory.offset + q, `zip64 ${what} of "${name}"`);
        q += 8;
        return value;
      };
      if (size === ZIP64_MARKER_32) size = next("size");
      if (compressedSize === ZIP64_MARKER_32) compressedSize = next("compressed size");
      if (headerOffset === ZIP64_MARKER_32) headerOffset = next("local header offset");
    }
    const method = view.getUint16(p + 10, true);
    if (method === METHOD_STORED && compressedSize !== size) {
      throw fail(
        p,
        `stored entry "${name}" has compressed size ${compressedSize} but size ${size}`,
      );
    }
    if (headerOffset + LOCAL_BYTES > directory.offset) {
      throw fail(
        p,
        `entry "${name}" has its local header at offset ${headerOffset}, ` +
          "past the central directory",
      );
    }
    if (names.has(name)) throw fail(p, `entry "${name}" appears twice`);
    names.add(name);
    entries.push({
      name,
      nameBytes,
      method,
      flags: view.getUint16(p + 8, true),
      crc32: view.getUint32(p + 16, true),
      compressedSize,
      size,
      headerOffset,
    });
    p = end;
  }
  return entries;
}

/** The data range of the extra field `id` among the extra fields in `[start, start + length)`. */
function findExtra(
  view: DataView,
  start: number,
  length: number,
  id: number,
): { start: number; end: number } | undefined {
  const end = start + length;
  let p = start;
  while (p + 4 <= end) {
    const fieldId = view.getUint16(p, true);
    const fieldEnd = p + 4 + view.getUint16(p + 2, true);
    if (fieldEnd > end) return undefined;
    if (fieldId === id) return { start: p + 4, end: fieldEnd };
    p = fieldEnd;
  }
  return undefined;
}
