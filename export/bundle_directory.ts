/**
 * Atomic bundle output: everything is written into a temporary directory beside the target and
 * renamed into place at the end, so a failed or killed export never leaves a partial bundle and
 * never damages the one already there.
 *
 * @module
 */

import { BUNDLE_FORMAT, MANIFEST_FILE } from "../bundle/manifest.ts";
import { ExportOptionsError } from "./options.ts";

/** The directory that holds `path`, for permission checks and the temporary sibling. */
export function parentDirectory(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : trimmed.slice(0, slash);
}

async function isBundle(path: string): Promise<boolean> {
  try {
    const manifest = JSON.parse(await Deno.readTextFile(`${path}/${MANIFEST_FILE}`));
    return manifest?.format === BUNDLE_FORMAT;
  } catch {
    return false;
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
  if (!stat.isDirectory || !(await isBundle(output))) {
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

/** A temporary directory that becomes the bundle on {@link commit}, or disappears. */
export class StagedBundle implements AsyncDisposable {
  /** Where to write the bundle's files now. */
  readonly path: string;
  readonly #output: string;
  #committed = false;

  private constructor(path: string, output: string) {
    this.path = path;
    this.#output = output;
  }

  /** Creates the temporary directory beside `output`, and the directories above it if missing. */
  static async create(output: string): Promise<StagedBundle> {
    const name = output.replace(/\/+$/, "").split("/").pop()!;
    const parent = parentDirectory(output);
    await Deno.mkdir(parent, { recursive: true });
    const path = await Deno.makeTempDir({
      dir: parent,
      prefix: `.${name}.partial-`,
    });
    return new StagedBundle(path, output);
  }

  /** Moves the finished bundle to the output path, replacing an older bundle there. */
  async commit(): Promise<void> {
    await checkOutputPath(this.#output);
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
    if (!this.#committed) await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}
