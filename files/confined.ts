/**
 * The one way untrusted files are read. A bundle, a package or a tokenizer is a directory of
 * files someone else wrote, so a name in it may be a symbolic link to any file on the machine
 * (Deno checks `--allow-read` against the link, not its target), a FIFO that blocks every read,
 * or a device such as `/dev/zero` that never ends. Every read here therefore resolves the real
 * path, refuses one that leaves its directory, refuses anything but a regular file, and reads at
 * most the size the opened file has, within a stated maximum. Errors name the file as the caller
 * named it, never its target and never its contents.
 *
 * @example Reading a file of a directory, and refusing a link out of it
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfinedDirectory, UnsafeFileError } from "./confined.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.json`, "{}");
 * await Deno.symlink("/etc/hostname", `${dir}/b.json`);
 * const confined = ConfinedDirectory.open(dir);
 * assert.equal(confined.readText("a.json", 100), "{}");
 * assert.throws(() => confined.readText("b.json", 100), UnsafeFileError);
 * ```
 *
 * @module
 */

/** A file refused before or while reading it: missing, outside its directory, special, too large. */
export class UnsafeFileError extends Error {
  /** The file as the caller named it. */
  readonly path: string;
  /** What is wrong, completing a sentence whose subject is the file, e.g. `is a FIFO`. */
  readonly detail: string;

  /** Builds the message `Cannot read "<path>": it <detail>`. */
  constructor(path: string, detail: string) {
    super(`Cannot read "${path}": it ${detail}`);
    this.name = "UnsafeFileError";
    this.path = path;
    this.detail = detail;
  }
}

/** What a non-regular file is, for the error that refuses it. */
function describeKind(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice || info.isBlockDevice) return "a device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

function statOrMissing(path: string): Deno.FileInfo {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new UnsafeFileError(path, "is missing");
    throw error;
  }
}

/**
 * Reads a regular file of at most `maxBytes` bytes. The size comes from the opened file itself,
 * and exactly that many bytes are read, so a file that grows while it is read cannot make the
 * read grow with it.
 *
 * @throws {UnsafeFileError} when the file is missing, not a regular file (a FIFO, a device, a
 *   directory), larger than `maxBytes`, or changes while it is opened
 */
export function readRegularFile(path: string, maxBytes: number): Uint8Array<ArrayBuffer> {
  // Stat before opening: opening a FIFO for reading blocks until someone writes to it.
  const before = statOrMissing(path);
  if (!before.isFile) throw new UnsafeFileError(path, `is ${describeKind(before)}`);
  using file = Deno.openSync(path, { read: true });
  const opened = file.statSync();
  const same = opened.isFile && (opened.ino === null || opened.ino === before.ino) &&
    (opened.dev === null || opened.dev === before.dev);
  if (!same) throw new UnsafeFileError(path, "changed while it was opened");
  if (opened.size > maxBytes) {
    throw new UnsafeFileError(path, `is ${opened.size} bytes, more than the ${maxBytes} allowed`);
  }
  const bytes = new Uint8Array(opened.size);
  let filled = 0;
  while (filled < bytes.length) {
    const count = file.readSync(bytes.subarray(filled));
    if (count === null || count === 0) {
      throw new UnsafeFileError(path, `ended at byte ${filled} while it was read`);
    }
    filled += count;
  }
  return bytes;
}

/** {@link readRegularFile} as UTF-8 text (malformed sequences become U+FFFD). */
export function readRegularTextFile(path: string, maxBytes: number): string {
  return new TextDecoder().decode(readRegularFile(path, maxBytes));
}

/** A relative name that cannot climb out of its directory by its spelling alone. */
function isPlainRelative(name: string): boolean {
  const parts = name.split("/");
  return name !== "" && !name.startsWith("/") &&
    parts.every((p) =>
      p !== "" && p !== "." && p !== ".." && !p.includes("\\") && !p.includes("\0")
    );
}

/**
 * A directory whose files are read only from inside it. Names are relative to it; a name that
 * resolves (through symbolic links or otherwise) outside the directory's real path is refused.
 */
export class ConfinedDirectory {
  /** The directory as the caller named it; file paths in errors start with it. */
  readonly path: string;
  readonly #root: string;

  private constructor(path: string, root: string) {
    this.path = path;
    this.#root = root;
  }

  /**
   * Confines reads to `path`, which must be a directory.
   *
   * @throws {UnsafeFileError} when `path` is missing or not a directory
   */
  static open(path: string): ConfinedDirectory {
    const trimmed = path.length > 1 ? path.replace(/\/+$/, "") : path;
    const info = statOrMissing(trimmed);
    if (!info.isDirectory) throw new UnsafeFileError(trimmed, `is ${describeKind(info)}`);
    return new ConfinedDirectory(trimmed, Deno.realPathSync(trimmed));
  }

  /** The path of `name` as the caller would write it: the directory's path joined to it. */
  join(name: string): string {
    return `${this.path}/${name}`;
  }

  /**
   * Checks that `name` stays inside the directory and is a regular file (or a directory, as
   * asked), and returns its path as {@link join} gives it. Opening that path reaches the checked
   * file; only a concurrent change of the directory could make it reach another.
   *
   * @throws {UnsafeFileError} when `name` is missing, leaves the directory, or is of another kind
   */
  resolve(name: string, kind: "file" | "directory" = "file"): string {
    const path = this.join(name);
    if (!isPlainRelative(name)) {
      throw new UnsafeFileError(path, "is not a name inside the directory");
    }
    let real: string;
    try {
      real = Deno.realPathSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw new UnsafeFileError(path, "is missing");
      throw error;
    }
    if (!real.startsWith(`${this.#root}/`)) {
      throw new UnsafeFileError(path, `resolves outside "${this.path}"`);
    }
    const info = Deno.statSync(real);
    const matches = kind === "file" ? info.isFile : info.isDirectory;
    if (!matches) throw new UnsafeFileError(path, `is ${describeKind(info)}, expected a ${kind}`);
    return path;
  }

  /** A directory inside this one, itself confined (and so confined to this one too). */
  directory(name: string): ConfinedDirectory {
    return ConfinedDirectory.open(this.resolve(name, "directory"));
  }

  /** Reads the regular file `name`, of at most `maxBytes` bytes (see {@link readRegularFile}). */
  read(name: string, maxBytes: number): Uint8Array<ArrayBuffer> {
    return readRegularFile(this.resolve(name), maxBytes);
  }

  /** {@link read} as UTF-8 text. */
  readText(name: string, maxBytes: number): string {
    return new TextDecoder().decode(this.read(name, maxBytes));
  }
}
