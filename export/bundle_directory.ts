/**
 * Atomic bundle output: everything is written into a temporary directory beside the target and
 * renamed into place at the end, so a failed or killed export never leaves a partial bundle and
 * never damages the one already there.
 *
 * @module
 */

import { BUNDLE_FORMAT, MANIFEST_FILE, MAX_MANIFEST_BYTES } from "../bundle/manifest.ts";
import { ConfinedDirectory, UnsafeFileError } from "../files/confined.ts";
import { JsonSyntaxError, parseJson } from "../files/json.ts";
import { ExportOptionsError } from "./options.ts";

/** The directory that holds `path`, for permission checks and the temporary sibling. */
export function parentDirectory(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : trimmed.slice(0, slash);
}

/** Whether `path` holds a llamane manifest of any version (one a FIFO or a link cannot fake). */
function isBundle(path: string): boolean {
  try {
    const text = ConfinedDirectory.open(path).readText(MANIFEST_FILE, MAX_MANIFEST_BYTES);
    const manifest = parseJson(text) as { format?: unknown } | null;
    return manifest?.format === BUNDLE_FORMAT;
  } catch (error) {
    if (error instanceof UnsafeFileError || error instanceof JsonSyntaxError) return false;
    throw error;
  }
}

/**
 * Fails unless `output` is free or holds a bundle that may be replaced: an export must never
 * overwrite anything else.
 */
export async function checkOutputPath(output: string): Promise<void> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(output);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (!stat.isDirectory || !isBundle(output)) {
    throw new ExportOptionsError(
      `output "${output}" exists and is not a llamane bundle; choose another --output`,
    );
  }
}

/** The disk filled up while a bundle was written; the partial bundle has been removed. */
export class DiskFullError extends Error {
  override name = "DiskFullError";
}

/**
 * `error` as the user should read it: a full disk (Deno's `ENOSPC`) becomes a
 * {@link DiskFullError} naming the output and saying that nothing there changed.
 */
export function explainWriteError(error: unknown, output: string): unknown {
  if ((error as { code?: unknown } | null)?.code !== "ENOSPC") return error;
  return new DiskFullError(
    `Cannot write "${output}": the disk is full. Nothing was changed there; free some space ` +
      "and export again",
    { cause: error },
  );
}

/**
 * Fails when `output` exists and holds one of the export's own inputs: replacing the bundle there
 * would delete the checkpoint, params or tokenizer being read.
 */
export async function checkInputsOutsideOutput(
  output: string,
  inputs: readonly string[],
): Promise<void> {
  let root: string;
  try {
    root = await Deno.realPath(output);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  for (const input of inputs) {
    const real = await Deno.realPath(input).catch(() => undefined);
    if (real === root || real?.startsWith(`${root}/`)) {
      throw new ExportOptionsError(
        `output "${output}" holds the input "${input}", which replacing the bundle would ` +
          "delete; choose another --output or move the input out of it",
      );
    }
  }
}

/**
 * The file in a staging directory that marks it as an export's own. The export holds an
 * exclusive lock on it while it runs; the system drops the lock when the process dies, however
 * it dies, so a lock that can be taken proves the export is gone.
 */
const STAGING_LOCK = ".llamane-export.lock";

/** The prefix of the staging directories of exports to `name`. */
function stagingPrefix(name: string): string {
  return `.${name}.partial-`;
}

/**
 * Removes the staging directories an export to `parent/name` left when it was killed: only those
 * with the export's lock file, a lock nobody holds, and no link on the way. Anything else by that
 * name (a live export's, another program's) is left alone.
 */
async function sweepStaleStaging(parent: string, name: string): Promise<void> {
  for await (const entry of Deno.readDir(parent)) {
    if (!entry.isDirectory || !entry.name.startsWith(stagingPrefix(name))) continue;
    const dir = `${parent}/${entry.name}`;
    const marker = `${dir}/${STAGING_LOCK}`;
    const isMarker = await Deno.lstat(marker).then((info) => info.isFile, () => false);
    if (!isMarker) continue;
    using lock = await Deno.open(marker, { read: true });
    if (lock.tryLockSync(true)) await Deno.remove(dir, { recursive: true });
  }
}

/** A temporary directory that becomes the bundle on {@link commit}, or disappears. */
export class StagedBundle implements AsyncDisposable {
  /** Where to write the bundle's files now. */
  readonly path: string;
  readonly #output: string;
  readonly #lock: Deno.FsFile;
  #committed = false;

  private constructor(path: string, output: string, lock: Deno.FsFile) {
    this.path = path;
    this.#output = output;
    this.#lock = lock;
  }

  /**
   * Creates the temporary directory beside `output` (and the directories above it if missing),
   * after removing the ones killed exports to the same output left behind. The directory gets
   * the permissions the umask gives, as the finished bundle will have them.
   */
  static async create(output: string): Promise<StagedBundle> {
    const name = output.replace(/\/+$/, "").split("/").pop()!;
    const parent = parentDirectory(output);
    await Deno.mkdir(parent, { recursive: true });
    await sweepStaleStaging(parent, name);
    // Made under a name sweeps ignore and renamed once locked, so that no sweep can see the
    // directory between the lock file's creation and its locking.
    const id = crypto.randomUUID().slice(0, 8);
    const unlocked = `${parent}/.${name}.creating-${id}`;
    await Deno.mkdir(unlocked);
    const lock = await Deno.open(`${unlocked}/${STAGING_LOCK}`, { write: true, createNew: true });
    lock.lockSync(true);
    const path = `${parent}/${stagingPrefix(name)}${id}`;
    await Deno.rename(unlocked, path);
    return new StagedBundle(path, output, lock);
  }

  /** Moves the finished bundle to the output path, replacing an older bundle there. */
  async commit(): Promise<void> {
    await checkOutputPath(this.#output);
    await Deno.remove(`${this.path}/${STAGING_LOCK}`);
    this.#lock.close();
    const previous = `${this.path}.previous`;
    let replaced = false;
    try {
      await Deno.rename(this.#output, previous);
      replaced = true;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    await Deno.rename(this.path, this.#output);
    this.#committed = true;
    if (replaced) await Deno.remove(previous, { recursive: true });
  }

  /** Removes the temporary directory unless it was committed. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#committed) return;
    try {
      this.#lock.close();
    } catch {
      // Already closed by a commit that failed after it.
    }
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}
