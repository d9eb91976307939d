/**
 * Positioned reads from a checkpoint file: the only way the readers touch the disk, so that every
 * read is bounds-checked against the file size and no reader ever loads a whole multi-GB file.
 *
 * @module
 */

import { CheckpointFormatError } from "./errors.ts";

/** An open file read by offset and length. Reads are queued: concurrent seeks never interleave. */
export class RandomAccessFile implements Disposable {
  /** The file's path, as given to {@link RandomAccessFile.open}. */
  readonly path: string;
  /** The file's size in bytes when it was opened. */
  readonly size: number;
  #file: Deno.FsFile;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(path: string, file: Deno.FsFile, size: number) {
    this.path = path;
    this.#file = file;
    this.size = size;
  }

  /** Opens `path` for reading; it must be a regular file. */
  static async open(path: string): Promise<RandomAccessFile> {
    // Checked before opening too: opening a FIFO blocks until something writes to it.
    if (!(await Deno.stat(path)).isFile) {
      throw new CheckpointFormatError(path, 0, "not a regular file");
    }
    const file = await Deno.open(path, { read: true });
    try {
      const stat = await file.stat();
      if (!stat.isFile) throw new CheckpointFormatError(path, 0, "not a regular file");
      return new RandomAccessFile(path, file, stat.size);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /**
   * Reads exactly `length` bytes at `offset` into a new buffer of that size (so typed-array views
   * over it are aligned). `what` names the bytes in the error raised when they lie past the end.
   */
  readAt(offset: number, length: number, what: string): Promise<Uint8Array<ArrayBuffer>> {
    if (
      !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0
    ) {
      return Promise.reject(
        new RangeError(`Cannot read ${what}: invalid range offset ${offset}, length ${length}`),
      );
    }
    if (offset + length > this.size) {
      return Promise.reject(
        new CheckpointFormatError(
          this.path,
          offset,
          `truncated file: ${what} at offset ${offset} (${length} bytes) ` +
            `runs past the end of the file (size ${this.size})`,
        ),
      );
    }
    const read = this.#queue.then(() => this.#read(offset, length, what));
    this.#queue = read.catch(() => {});
    return read;
  }

  async #read(offset: number, length: number, what: string): Promise<Uint8Array<ArrayBuffer>> {
    const bytes = new Uint8Array(length);
    await this.#file.seek(offset, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < length) {
      const n = await this.#file.read(bytes.subarray(filled));
      if (n === null) {
        throw new CheckpointFormatError(
          this.path,
          offset + filled,
          `truncated file: ${what} ends at offset ${offset + filled}, ` +
            `expected ${length} bytes from offset ${offset}; ` +
            "the file changed while it was being read",
        );
      }
      filled += n;
    }
    return bytes;
  }

  /** Closes the file. Reads already queued fail. */
  close(): void {
    this.#file.close();
  }

  /** Same as {@link RandomAccessFile.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
