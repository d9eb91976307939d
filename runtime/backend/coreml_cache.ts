/**
 * Where the Core ML bridge keeps compiled models: `<cache dir>/<hash>.mlmodelc`, the hash a
 * SHA-256 of every file of the `.mlpackage` (path, length, bytes). Compiling a large model takes
 * minutes, so it happens once per package content; an edited or re-exported package gets a new
 * hash and never reuses a stale compilation.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ConfinedDirectory } from "../../files/confined.ts";
import { requirePermissions, writeNeed } from "../../permissions.ts";

/** Variable that overrides the cache directory. */
export const CACHE_DIR_ENV = "LLAMANE_COREML_CACHE";

async function env(name: string): Promise<string | undefined> {
  // A denied env permission means "not set", so that no flag is needed to use the defaults.
  const status = await Deno.permissions.query({ name: "env", variable: name });
  const value = status.state === "granted" ? Deno.env.get(name) : undefined;
  return value === "" ? undefined : value;
}

/**
 * The cache directory: `LLAMANE_COREML_CACHE`, else `~/Library/Caches/llamane/coreml` (macOS's
 * per-user cache folder).
 */
export async function defaultCacheDir(): Promise<string> {
  const fromEnv = await env(CACHE_DIR_ENV);
  if (fromEnv !== undefined) return fromEnv;
  const home = await env("HOME");
  if (home === undefined) {
    throw new Deno.errors.NotFound(
      `Cannot choose a Core ML cache directory: neither ${CACHE_DIR_ENV} nor HOME is readable; ` +
        `set ${CACHE_DIR_ENV} and run with --allow-env=${CACHE_DIR_ENV}, or pass cacheDir`,
    );
  }
  return `${home}/Library/Caches/llamane/coreml`;
}

/** Checks the write permission for `cacheDir` and creates it. */
export async function prepareCacheDir(cacheDir: string): Promise<void> {
  await requirePermissions([writeNeed(cacheDir, "cache compiled Core ML models")]);
  await Deno.mkdir(cacheDir, { recursive: true });
}

async function packageFiles(dir: string, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const relative = `${prefix}${entry.name}`;
    // Symbolic links are hashed as files (read through), never followed as directories.
    if (entry.isDirectory) files.push(...await packageFiles(dir, `${relative}/`));
    else files.push(relative);
  }
  return files.sort();
}

/** Hashes already computed in this process, keyed by package and its files' identities. */
const known = new Map<string, string>();

/**
 * The SHA-256 (hex) of a package: each file's relative path, byte length and bytes, in sorted
 * path order. Reading a 1 GB weight.bin costs about a second, once per process.
 */
export async function packageHash(packagePath: string): Promise<string> {
  const files = await packageFiles(packagePath);
  // Core ML reads every file of the package: each must be a regular file inside it.
  const pkg = ConfinedDirectory.open(packagePath);
  const paths = files.map((f) => pkg.resolve(f));
  const stats = await Promise.all(paths.map((path) => Deno.stat(path)));
  // A re-export writes new files (new inodes); an edit changes the modification time.
  const stamp = JSON.stringify([
    packagePath,
    files,
    stats.map((s) => [s.size, s.ino, s.mtime?.getTime(), s.ctime?.getTime()]),
  ]);
  const cached = known.get(stamp);
  if (cached !== undefined) return cached;
  const hash = createHash("sha256");
  const chunk = new Uint8Array(1 << 22);
  for (const [i, file] of files.entries()) {
    hash.update(`${file}\0${stats[i]!.size}\0`);
    using handle = await Deno.open(paths[i]!);
    for (let n = await handle.read(chunk); n !== null; n = await handle.read(chunk)) {
      hash.update(chunk.subarray(0, n));
    }
  }
  const digest = hash.digest("hex");
  known.set(stamp, digest);
  return digest;
}

/** The cache path of the compiled form of `packagePath`. */
export async function compiledModelPath(packagePath: string, cacheDir: string): Promise<string> {
  return `${cacheDir}/${await packageHash(packagePath)}.mlmodelc`;
}
