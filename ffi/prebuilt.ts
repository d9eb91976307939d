/**
 * The prebuilt native libraries of each release: which asset this machine needs, where it is
 * served, and where it is cached. `native_assets.json` records, per llamane version, the SHA-256
 * of every asset the release workflow (.github/workflows/release.yml) published; only those exact
 * bytes are ever loaded.
 *
 * @module
 */

import record from "./native_assets.json" with { type: "json" };
import { cachedDownload } from "./native_download.ts";
import { userCacheDir } from "./user_cache_dir.ts";
import {
  ffiNeed,
  missingFlags,
  MissingPermissionError,
  netNeed,
  readNeed,
  writeNeed,
} from "../permissions.ts";
import { VERSION } from "../version.ts";

/** The libraries released prebuilt: the CPU backend, and the Core ML bridge for macOS. */
export type PrebuiltLibrary = "llamane_cpu" | "llamane_coreml";

/** Variable naming a mirror of the release assets, laid out as `<base>/v<version>/<asset>`. */
export const BASE_URL_ENV = "LLAMANE_NATIVE_BASE_URL";

/** Where the project's releases are downloaded from. */
export const DEFAULT_BASE_URL = "https://github.com/llamane/llamane/releases/download/";

/** SHA-256 of each asset, by version then asset name. */
export type AssetRecord = Readonly<Record<string, Readonly<Record<string, string>>>>;

const ARCHES: Partial<Record<typeof Deno.build.arch, string>> = { x86_64: "x64", aarch64: "arm64" };
const OSES: Partial<Record<typeof Deno.build.os, string>> = {
  linux: "linux",
  darwin: "macos",
  windows: "windows",
};

/** This machine as the release assets name it, e.g. `linux-x64` or `macos-arm64`. */
export function platformName(
  os: typeof Deno.build.os = Deno.build.os,
  arch: typeof Deno.build.arch = Deno.build.arch,
): string {
  return `${OSES[os] ?? os}-${ARCHES[arch] ?? arch}`;
}

/** One library a release builds, for one OS and architecture. */
export interface ReleasedBuild {
  readonly library: PrebuiltLibrary;
  readonly os: typeof Deno.build.os;
  readonly arch: typeof Deno.build.arch;
}

/** What each release builds and publishes (.github/workflows/release.yml). */
export const RELEASED_BUILDS: readonly ReleasedBuild[] = [
  { library: "llamane_cpu", os: "linux", arch: "x86_64" },
  { library: "llamane_cpu", os: "linux", arch: "aarch64" },
  { library: "llamane_cpu", os: "darwin", arch: "aarch64" },
  { library: "llamane_cpu", os: "windows", arch: "x86_64" },
  { library: "llamane_coreml", os: "darwin", arch: "aarch64" },
];

/** The file name cargo gives the library on `os`, e.g. `libllamane_cpu.so`. */
export function libraryFileName(
  library: PrebuiltLibrary,
  os: typeof Deno.build.os = Deno.build.os,
): string {
  if (os === "windows") return `${library}.dll`;
  return `lib${library}.${os === "darwin" ? "dylib" : "so"}`;
}

/** The asset's file name, e.g. `libllamane_cpu-linux-x64.so` or `llamane_cpu-windows-x64.dll`. */
export function assetName(
  library: PrebuiltLibrary,
  os: typeof Deno.build.os = Deno.build.os,
  arch: typeof Deno.build.arch = Deno.build.arch,
): string {
  return libraryFileName(library, os).replace(
    /\.\w+$/,
    (ext) => `-${platformName(os, arch)}${ext}`,
  );
}

async function baseUrl(): Promise<URL> {
  const status = await Deno.permissions.query({ name: "env", variable: BASE_URL_ENV });
  const value = status.state === "granted" ? Deno.env.get(BASE_URL_ENV) : undefined;
  if (value === undefined || value === "") return new URL(DEFAULT_BASE_URL);
  try {
    return new URL(value.endsWith("/") ? value : `${value}/`);
  } catch {
    throw new TypeError(`Cannot use ${BASE_URL_ENV}: "${value}" is not a URL`);
  }
}

/** The cached library, or why the download way is closed, completing "the prebuilt library: ...". */
export type PrebuiltLookup = { readonly path: string } | { readonly unavailable: string };

/**
 * The prebuilt `library` of this llamane version for this machine: the verified cached copy, else
 * downloaded from {@link BASE_URL_ENV} or the project's releases, verified and cached under the
 * user cache directory. When a permission is missing, nothing is fetched and every flag the
 * download needs is named at once.
 *
 * @param what the library, for messages, e.g. `the CPU backend library`
 * @param assets the SHA-256 record; tests give their own
 * @throws {NativeDownloadError} when the download fails or does not match the record
 */
export async function prebuiltLibrary(
  library: PrebuiltLibrary,
  what: string,
  assets: AssetRecord = record,
): Promise<PrebuiltLookup> {
  const name = assetName(library);
  const sha256 = assets[VERSION]?.[name];
  if (sha256 === undefined) {
    return {
      unavailable: `none is recorded for llamane ${VERSION} on ${platformName()} (${name})`,
    };
  }
  const cache = await userCacheDir();
  if ("unknown" in cache) return { unavailable: `to download it, ${cache.unknown}` };
  const directory = `${cache.path}/llamane/native`;
  const path = `${directory}/${VERSION}/${name}`;
  const url = new URL(`v${VERSION}/${name}`, await baseUrl());
  const missing = await missingFlags([
    readNeed(directory, "read the cache"),
    writeNeed(directory, "write the cache"),
    netNeed(url.host, "download"),
    ffiNeed(path, "load it"),
  ]);
  try {
    return { path: await cachedDownload({ url, sha256, path, what }) };
  } catch (error) {
    if (!(error instanceof MissingPermissionError)) throw error;
    return { unavailable: `to download ${url.href}, run with ${missing.join(" ")}` };
  }
}
