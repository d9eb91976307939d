/**
 * Bundles the benchmarks run, exported on first use and cached under `out/bench/bundles/`. A
 * cached bundle is reused only while its key still matches: the llamane version, the checkpoint
 * (path, size, modification time), the export options and the source of the exporter, so a change
 * to any of them re-exports.
 *
 * @module
 */

import { exportModel } from "../export/export_model.ts";
import type { ExportOptions } from "../export/options.ts";
import { VERSION } from "../version.ts";

const ROOT = new URL("../", import.meta.url);
const CACHE = new URL("out/bench/bundles/", ROOT);
/** What decides a bundle's bytes: the exporter and the modules it builds on. */
const EXPORTER_SOURCES = ["export", "bundle", "llama", "checkpoint", "coreml", "protobuf"];

/** A checkpoint a benchmark exports: `params` for a Meta one, none for GGUF or Hugging Face. */
export interface ExportSource {
  /** Short name, the prefix of its cached bundles. */
  readonly key: string;
  /** A file: its path, size and modification time key the cache. */
  readonly checkpoint: string;
  readonly params?: string;
  /** RoPE scale factor for `use_scaled_rope` checkpoints. */
  readonly ropeScaleFactor?: number;
  /** Makes the checkpoint when it is missing. */
  ensure(): Promise<void>;
}

/** Export options a benchmark chooses; paths come from the model and the cache. */
export type BundleOptions = Omit<
  Partial<ExportOptions>,
  "checkpoint" | "params" | "output" | "onProgress" | "ropeScaleFactor"
>;

async function* sourceFiles(dir: URL): AsyncGenerator<URL> {
  const entries = [];
  for await (const entry of Deno.readDir(dir)) entries.push(entry);
  // Sorted, so that the hash does not depend on the order the file system lists them in.
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const entry of entries) {
    const url = new URL(entry.isDirectory ? `${entry.name}/` : entry.name, dir);
    if (entry.isDirectory) yield* sourceFiles(url);
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) yield url;
  }
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

let exporterHash: Promise<string> | undefined;

/** SHA-256 over the exporter's source files, computed once per process. */
function hashExporter(): Promise<string> {
  return exporterHash ??= (async () => {
    const parts: string[] = [];
    for (const dir of EXPORTER_SOURCES) {
      for await (const file of sourceFiles(new URL(`${dir}/`, ROOT))) {
        const text = await Deno.readFile(file);
        parts.push(`${file.pathname.slice(ROOT.pathname.length)} ${await sha256Hex(text)}`);
      }
    }
    return await sha256Hex(new TextEncoder().encode(parts.join("\n")));
  })();
}

async function readText(path: URL): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * A readable name for an export: dtype, linear and embedding quantization (with the defaults
 * filled in), then any other option given, e.g. `fp16-c4w-e8-0-multifunction`.
 */
export function bundleLabel(options: BundleOptions): string {
  const { dtype, linearQuantize, embeddingQuantize, multifunction, ...rest } = options;
  const embedding = embeddingQuantize ?? { bits: 8, groupSize: 0 };
  const parts = [
    dtype ?? "fp16",
    linearQuantize ?? "c4w",
    typeof embedding === "string"
      ? `e${embedding}`
      : "paletteBits" in embedding
      ? `elut${embedding.paletteBits}`
      : `e${embedding.bits}-${embedding.groupSize}`,
    ...(multifunction ? ["multifunction"] : []),
    ...Object.entries(rest).sort().map(([key, value]) => `${key}${value}`),
  ];
  return parts.join("-");
}

/**
 * The path of `model` exported with `options`, exporting it unless the cache holds one with the
 * same key. Bundles are named by {@link bundleLabel}, so benchmarks asking for the same export
 * share one.
 */
export async function cachedBundle(
  model: ExportSource,
  options: BundleOptions = {},
): Promise<string> {
  await model.ensure();
  const checkpoint = await Deno.stat(model.checkpoint);
  const key = JSON.stringify({
    llamane: VERSION,
    exporter: await hashExporter(),
    checkpoint: [model.checkpoint, checkpoint.size, checkpoint.mtime?.getTime() ?? 0],
    params: model.params === undefined ? null : await sha256Hex(await Deno.readFile(model.params)),
    ropeScaleFactor: model.ropeScaleFactor ?? null,
    options: bundleLabel(options),
  });
  const name = `${model.key}-${bundleLabel(options)}`;
  const output = new URL(`${name}.llamane`, CACHE);
  const keyFile = new URL(`${name}.key.json`, CACHE);
  const manifest = await readText(new URL(`${name}.llamane/manifest.json`, CACHE));
  if (manifest !== undefined && await readText(keyFile) === key) return output.pathname;

  await Deno.mkdir(CACHE, { recursive: true });
  // The export replaces the bundle before the new key is written: with no key in between, a run
  // that dies there leaves a bundle nothing will take for cached.
  await Deno.remove(keyFile).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  console.log(`exporting ${name} (cached in ${CACHE.pathname})`);
  const started = performance.now();
  await exportModel({
    ...options,
    checkpoint: model.checkpoint,
    ...(model.params === undefined ? {} : { params: model.params }),
    output: output.pathname,
    ...(model.ropeScaleFactor === undefined ? {} : { ropeScaleFactor: model.ropeScaleFactor }),
  });
  console.log(`exported ${name} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  await Deno.writeTextFile(keyFile, key);
  return output.pathname;
}
