/**
 * Runs Deno as a user of llamane would, away from this repository: in a given directory, with
 * no configuration file, so that nothing of the repository's deno.json (its import map, its
 * lockfile) helps, with exactly the flags a test passes, and with a cache of remote modules of
 * its own (removed afterwards), as on a machine that never ran llamane. npm packages come from
 * the usual cache, so that no registry is needed offline.
 *
 * @module
 */

import { libraryFileName } from "../ffi/prebuilt.ts";

/** Exit code and output of one run. */
export interface DenoResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link runDeno}. */
export interface RunDenoOptions {
  /** Working directory. */
  readonly cwd: string;
  /** Environment variables added to the inherited ones. */
  readonly env?: Record<string, string>;
  /** A cache from {@link makeDenoDir} to share between runs. @default a new one for this run */
  readonly denoDir?: string;
}

async function npmCache(): Promise<string> {
  const { stdout } = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  return JSON.parse(new TextDecoder().decode(stdout)).npmCache;
}

/** A new, empty Deno cache directory sharing only the npm cache; the caller removes it. */
export async function makeDenoDir(): Promise<string> {
  const denoDir = await Deno.makeTempDir({ prefix: "llamane-deno-dir-" });
  await Deno.symlink(await npmCache(), `${denoDir}/npm`);
  return denoDir;
}

/** Runs `deno <args>` with `--no-config`, inserted after the subcommand. */
export async function runDeno(
  [subcommand, ...args]: readonly string[],
  options: RunDenoOptions,
): Promise<DenoResult> {
  const denoDir = options.denoDir ?? await makeDenoDir();
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [subcommand!, "--quiet", "--no-config", ...args],
      cwd: options.cwd,
      env: { ...options.env, DENO_DIR: denoDir },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
  } finally {
    if (options.denoDir === undefined) await Deno.remove(denoDir, { recursive: true });
  }
}

/** The CPU backend library built in this clone by `deno task build:native`. */
export const LOCAL_CPU_LIBRARY: string = decodeURIComponent(
  new URL(`../ffi/cpu/target/release/${libraryFileName("llamane_cpu")}`, import.meta.url).pathname,
);
