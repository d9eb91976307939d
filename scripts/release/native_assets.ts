/**
 * The release workflow's two steps around the prebuilt native libraries
 * (.github/workflows/release.yml):
 *
 *   collect DIR   copies the libraries built on this machine into DIR under their asset names
 *   record DIR    writes the SHA-256 of every asset in DIR, for this llamane version, into
 *                 ffi/native_assets.json, which the release commits and llamane checks
 *                 downloads against
 *
 * Run: `deno run --allow-read --allow-write scripts/release/native_assets.ts collect|record DIR`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  assetName,
  type AssetRecord,
  libraryFileName,
  type PrebuiltLibrary,
  RELEASED_BUILDS,
} from "../../ffi/prebuilt.ts";
import { VERSION } from "../../version.ts";

const FFI = new URL("../../ffi/", import.meta.url);

/** Where cargo puts each library, relative to ffi/. */
const BUILT: Readonly<Record<PrebuiltLibrary, string>> = {
  llamane_cpu: "cpu/target/release/",
  llamane_coreml: "coreml/target/release/",
};

/** The committed record. */
export const RECORD_FILE: URL = new URL("native_assets.json", FFI);

/**
 * Copies each library released for this machine's OS and architecture from its cargo build into
 * `directory` under its asset name, and returns those names.
 */
export async function collectAssets(directory: string): Promise<string[]> {
  await Deno.mkdir(directory, { recursive: true });
  const names: string[] = [];
  for (const { library, os, arch } of RELEASED_BUILDS) {
    if (os !== Deno.build.os || arch !== Deno.build.arch) continue;
    const built = new URL(`${BUILT[library]}${libraryFileName(library)}`, FFI);
    const name = assetName(library);
    await Deno.copyFile(built, `${directory}/${name}`);
    names.push(name);
  }
  return names;
}

/**
 * `record` with the SHA-256 of every file in `directory` added under `version`. Refuses a file
 * that is no released asset, and a hash that differs from one already recorded: the assets of a
 * published version never change.
 */
export async function recordAssets(
  record: AssetRecord,
  directory: string,
  version: string = VERSION,
): Promise<AssetRecord> {
  const known = new Set(RELEASED_BUILDS.map((b) => assetName(b.library, b.os, b.arch)));
  const assets: Record<string, string> = { ...record[version] };
  const files = (await Array.fromAsync(Deno.readDir(directory))).map((e) => e.name).sort();
  for (const name of files) {
    if (!known.has(name)) {
      throw new Error(`Cannot record "${name}": it is not a released asset (${[...known]})`);
    }
    const sha256 = createHash("sha256").update(await Deno.readFile(`${directory}/${name}`))
      .digest("hex");
    const previous = assets[name];
    if (previous !== undefined && previous !== sha256) {
      throw new Error(
        `Cannot record "${name}" for ${version}: ${previous} is recorded already, and a ` +
          "published version's assets never change",
      );
    }
    assets[name] = sha256;
  }
  const sorted = Object.fromEntries(Object.entries(assets).sort(([a], [b]) => a < b ? -1 : 1));
  return { ...record, [version]: sorted };
}

if (import.meta.main) {
  const [step, directory] = Deno.args;
  if (directory === undefined || (step !== "collect" && step !== "record")) {
    console.error("Usage: native_assets.ts collect|record DIR");
    Deno.exit(2);
  }
  if (step === "collect") {
    for (const name of await collectAssets(directory)) console.log(`${directory}/${name}`);
  } else {
    const record = JSON.parse(await Deno.readTextFile(RECORD_FILE));
    const updated = await recordAssets(record, directory);
    await Deno.writeTextFile(RECORD_FILE, `${JSON.stringify(updated, null, 2)}\n`);
    console.log(JSON.stringify(updated[VERSION], null, 2));
  }
}
