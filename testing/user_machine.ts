/**
 * A user of llamane with nothing but Deno, and the network they reach it through: a release of
 * llamane served over HTTP from 127.0.0.1 (its code, with ffi/native_assets.json recording the
 * SHA-256 of the CPU library built in this clone, and that library among the release assets), and
 * a machine with an empty home directory as the working directory, its own user cache, temporary
 * folder and Deno cache.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { assetName, BASE_URL_ENV } from "../ffi/prebuilt.ts";
import { VERSION } from "../version.ts";
import { type FileServer, REPOSITORY_ROOT, serveFiles } from "./file_server.ts";
import { type DenoResult, LOCAL_CPU_LIBRARY, makeDenoDir, runDeno } from "./deno_run.ts";

/** The CPU library this clone built, as released. */
export const LIBRARY: Uint8Array<ArrayBuffer> = await Deno.readFile(LOCAL_CPU_LIBRARY);

/** This platform's CPU library asset. */
export const ASSET: string = assetName("llamane_cpu");

/** Where a release server keeps the assets, laid out as `<base>/v<version>/<asset>`. */
export const RELEASES = "releases/";

/**
 * Serves the repository as released, with `asset` (default: the library built here, unaltered) as
 * this platform's CPU library asset under {@link RELEASES}.
 */
export function serveRelease(asset: Uint8Array<ArrayBuffer> = LIBRARY): FileServer {
  const record = { [VERSION]: { [ASSET]: createHash("sha256").update(LIBRARY).digest("hex") } };
  return serveFiles(
    REPOSITORY_ROOT,
    new Map([
      ["ffi/native_assets.json", new TextEncoder().encode(JSON.stringify(record))],
      [`${RELEASES}v${VERSION}/${ASSET}`, asset],
    ]),
  );
}

/** Where llamane's code and its release assets come from. */
export interface Network {
  /** The root of the served code. */
  readonly code: URL;
  /** The base of the release assets. @default `<code>releases/` */
  readonly releases?: URL;
}

/** A user's machine; disposing it removes everything it holds. */
export interface UserMachine extends AsyncDisposable {
  /** The home directory, also the working directory of every run. */
  readonly home: string;
  /** Its Deno cache. */
  readonly denoDir: string;
  /** Where llamane caches this platform's prebuilt CPU library. */
  readonly cachedLibrary: string;
  /**
   * Runs `deno run <flags> <args>`: by default with the permissions a careful user grants to
   * llamane loaded from `network` (its hosts, the home directory, the variables that locate the
   * user cache and the mirror, the library cache), or exactly `flags` when given.
   */
  run(args: readonly string[], network: Network, flags?: readonly string[]): Promise<DenoResult>;
}

/** A new machine with an empty home, user cache and Deno cache. */
export async function userMachine(): Promise<UserMachine> {
  const home = await Deno.makeTempDir({ prefix: "llamane-home-" });
  const denoDir = await makeDenoDir();
  const libraryCache = `${home}/.cache/llamane/native`;
  return {
    home,
    denoDir,
    cachedLibrary: `${libraryCache}/${VERSION}/${ASSET}`,
    run(args, { code, releases = new URL(RELEASES, code) }, flags) {
      const hosts = [...new Set([code.host, releases.host])].join(",");
      const granted = flags ?? [
        `--allow-import=${code.host}`,
        `--allow-net=${hosts}`,
        `--allow-read=${home}`,
        `--allow-write=${home}`,
        `--allow-env=HOME,XDG_CACHE_HOME,LLAMANE_CPU_LIB,${BASE_URL_ENV}`,
        `--allow-ffi=${libraryCache}`,
      ];
      return runDeno(["run", ...granted, ...args], {
        cwd: home,
        denoDir,
        env: { HOME: home, XDG_CACHE_HOME: "", TMPDIR: home, [BASE_URL_ENV]: releases.href },
      });
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(home, { recursive: true });
      await Deno.remove(denoDir, { recursive: true });
    },
  };
}
