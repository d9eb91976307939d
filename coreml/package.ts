/**
 * `.mlpackage` directories: `Manifest.json` plus `Data/com.apple.CoreML/model.mlmodel` and
 * `Data/com.apple.CoreML/weights/weight.bin`. The writer derives the manifest's item identifiers
 * from a hash of the content, so the same model gives byte-identical packages. The reader
 * validates the manifest (version, item fields, paths that stay inside the package) and every
 * weight.bin reference of the program before returning it.
 *
 * @example Writing and reading back a package
 * ```ts
 * import assert from "node:assert";
 * import { PackageWriter, readPackage } from "./package.ts";
 * import { ProgramBuilder } from "./builder.ts";
 *
 * const path = `${await Deno.makeTempDir()}/Tiny.mlpackage`;
 * using pkg = PackageWriter.create(path);
 * const program = new ProgramBuilder({ weights: pkg.weights });
 * const main = program.function("main");
 * const x = main.input("x", { dtype: "fp32", shape: [2] });
 * main.output(main.op("relu", { x }, x.type, { name: "y" }));
 * pkg.finish(program.build());
 * assert.strictEqual(readPackage(path).model.description.outputs[0]?.name, "y");
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ConfinedDirectory, UnsafeFileError } from "../files/confined.ts";
import { JsonSyntaxError, parseJson } from "../files/json.ts";
import { BlobStorageReader, BlobStorageWriter } from "./blob_storage.ts";
import { CoremlFormatError } from "./errors.ts";
import type { BlobValue } from "./mil.ts";
import type { Model } from "./model.ts";
import { decodeModel } from "./proto_reader.ts";
import { encodeModel } from "./proto_writer.ts";
import { checkShape } from "./tensor.ts";

/** The only manifest format version there is. */
export const FILE_FORMAT_VERSION = "1.0.0";

/** A manifest item: a file or folder under `Data/`. */
export interface ManifestItem {
  /** Path relative to `Data/`, `<author>/<name>`. */
  readonly path: string;
  /** File or folder name. */
  readonly name: string;
  /** The folder under `Data/` that holds it. */
  readonly author: string;
  /** What it is. */
  readonly description: string;
}

/** The model specification item every package has. */
export const MODEL_ITEM: ManifestItem = {
  path: "com.apple.CoreML/model.mlmodel",
  name: "model.mlmodel",
  author: "com.apple.CoreML",
  description: "CoreML Model Specification",
};

/** The weights folder item, which holds weight.bin. */
export const WEIGHTS_ITEM: ManifestItem = {
  path: "com.apple.CoreML/weights",
  name: "weights",
  author: "com.apple.CoreML",
  description: "CoreML Model Weights",
};

/** The package's manifest file name. */
const MANIFEST_FILE = "Manifest.json";
/** Largest Manifest.json the reader accepts; real ones are a few hundred bytes. */
const MAX_MANIFEST_BYTES = 1 << 20;
/** Largest model.mlmodel the reader accepts: protobuf's own 2 GiB message limit. */
const MAX_MODEL_BYTES = 2 ** 31 - 1;

/**
 * Writes one `.mlpackage`: create it, let a `ProgramBuilder` append constants to `weights`, then
 * {@link finish} with the built model.
 */
export class PackageWriter implements Disposable {
  /** The package directory. */
  readonly path: string;
  /** The package's weight.bin, open for appending. */
  readonly weights: BlobStorageWriter;
  #finished = false;

  private constructor(path: string, weights: BlobStorageWriter) {
    this.path = path;
    this.weights = weights;
  }

  /**
   * Creates the package directory (which must not exist yet) and opens its weight.bin.
   *
   * @throws {TypeError} when the name does not end in `.mlpackage`
   * @throws {Deno.errors.AlreadyExists} when something is already at `path`
   */
  static create(path: string): PackageWriter {
    if (!path.replace(/\/+$/, "").endsWith(".mlpackage")) {
      throw new TypeError(`Cannot create package "${path}": its name must end in ".mlpackage"`);
    }
    Deno.mkdirSync(path);
    const weightsDir = `${path}/Data/${WEIGHTS_ITEM.path}`;
    Deno.mkdirSync(weightsDir, { recursive: true });
    return new PackageWriter(path, BlobStorageWriter.create(`${weightsDir}/weight.bin`));
  }

  /**
   * Closes weight.bin, then writes model.mlmodel and Manifest.json.
   *
   * @throws {MilProgramError} when the model fails validation (nothing more is written)
   */
  finish(model: Model): void {
    if (this.#finished) throw new Error(`Cannot finish package "${this.path}": it is finished`);
    const modelBytes = encodeModel(model);
    this.weights.close();
    this.#finished = true;
    Deno.writeFileSync(`${this.path}/Data/${MODEL_ITEM.path}`, modelBytes);
    const content = `${sha256(modelBytes)}\n${this.weights.digest()}`;
    const modelId = contentUuid(`${MODEL_ITEM.name}\n${content}`);
    const weightsId = contentUuid(`${WEIGHTS_ITEM.name}\n${content}`);
    // coremltools writes the manifest with sorted keys and a 4-space indent; so do we.
    const entries = [[modelId, MODEL_ITEM], [weightsId, WEIGHTS_ITEM]] as const;
    const sorted = (item: ManifestItem) => ({
      author: item.author,
      description: item.description,
      name: item.name,
      path: item.path,
    });
    const manifest = {
      fileFormatVersion: FILE_FORMAT_VERSION,
      itemInfoEntries: Object.fromEntries(
        [...entries].sort(([a], [b]) => a < b ? -1 : 1).map(([id, item]) => [id, sorted(item)]),
      ),
      rootModelIdentifier: modelId,
    };
    Deno.writeTextFileSync(
      `${this.path}/${MANIFEST_FILE}`,
      JSON.stringify(manifest, null, 4) + "\n",
    );
  }

  /** Closes weight.bin if {@link finish} was never called, leaving an incomplete package. */
  [Symbol.dispose](): void {
    if (!this.#finished) this.weights.close();
  }
}

function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A UUID-shaped identifier (version 8, "custom") derived from `content`. */
function contentUuid(content: string): string {
  const hex = sha256(content).slice(0, 32).split("");
  hex[12] = "8";
  hex[16] = "89ab"[parseInt(hex[16]!, 16) & 3]!;
  const h = hex.join("").toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A package read back and checked. */
export interface PackageContents {
  /** The decoded model. */
  readonly model: Model;
  /** Path of model.mlmodel. */
  readonly modelPath: string;
  /**
   * Path of weight.bin, checked to be a regular file inside the package, or `undefined` when the
   * package has no weights item or file.
   */
  readonly weightsPath: string | undefined;
}

/**
 * Reads a `.mlpackage`: validates Manifest.json, decodes model.mlmodel, and checks that every
 * weight.bin reference points at a valid blob of the declared dtype and element count. Every file
 * is read through {@link ConfinedDirectory}: none may resolve outside the package or be anything
 * but a regular file, and errors never quote a file's contents.
 *
 * @throws {CoremlFormatError} naming the file and problem
 */
export function readPackage(path: string): PackageContents {
  const fail = (file: string, detail: string, cause?: unknown): never => {
    throw new CoremlFormatError(
      file,
      undefined,
      `Cannot read package "${path}": ${detail}`,
      cause === undefined ? undefined : { cause },
    );
  };
  const guarded = <T>(read: () => T): T => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof UnsafeFileError)) throw error;
      return fail(error.path, `"${error.path}" ${error.detail}`, error);
    }
  };
  const pkg = guarded(() => ConfinedDirectory.open(path));
  const manifestPath = pkg.join(MANIFEST_FILE);
  let manifest: unknown;
  try {
    manifest = parseJson(guarded(() => pkg.readText(MANIFEST_FILE, MAX_MANIFEST_BYTES)));
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    fail(manifestPath, `${MANIFEST_FILE} ${error.message}`, error);
  }
  const items = checkManifest(
    manifest,
    (detail) => fail(manifestPath, `${MANIFEST_FILE} ${detail}`),
  );
  const modelName = `Data/${items.root.path}`;
  const model = decodeModel(
    guarded(() => pkg.read(modelName, MAX_MODEL_BYTES)),
    pkg.join(modelName),
  );

  let weightsPath: string | undefined;
  if (items.weights !== undefined) {
    const weightsDir = `Data/${items.weights.path}`;
    guarded(() => pkg.resolve(weightsDir, "directory"));
    const weightsName = `${weightsDir}/weight.bin`;
    if (exists(pkg.join(weightsName))) weightsPath = guarded(() => pkg.resolve(weightsName));
  }
  checkBlobReferences(model, weightsPath, (detail) => fail(pkg.join(modelName), detail));
  return { model, modelPath: pkg.join(modelName), weightsPath };
}

/** Whether anything, even a dangling link, is at `path`. */
function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Checks the manifest's shape and returns its root item and its weights item, if any. */
function checkManifest(
  manifest: unknown,
  fail: (detail: string) => never,
): { root: ManifestItem; weights: ManifestItem | undefined } {
  if (!isRecord(manifest)) return fail("is not a JSON object");
  const version = manifest.fileFormatVersion;
  if (typeof version !== "string" || !/^\d+\.\d+\.\d+$/.test(version)) {
    fail(`has fileFormatVersion "${version}", expected three dot-separated integers`);
  }
  if (compareVersions(version, FILE_FORMAT_VERSION) > 0) {
    fail(`has fileFormatVersion "${version}", newer than the supported ${FILE_FORMAT_VERSION}`);
  }
  const entries = manifest.itemInfoEntries;
  if (!isRecord(entries)) return fail(`has no "itemInfoEntries" object`);
  const items = new Map<string, ManifestItem>();
  for (const [id, item] of Object.entries(entries)) {
    if (!isRecord(item)) return fail(`item "${id}" is not an object`);
    const fields = ["path", "name", "author", "description"] as const;
    for (const field of fields) {
      if (typeof item[field] !== "string") fail(`item "${id}" has no string "${field}"`);
    }
    const checked = item as unknown as ManifestItem;
    const parts = checked.path.split("/");
    if (
      parts.some((p) => p === "" || p === "." || p === ".." || p.includes("\\") || p.includes("\0"))
    ) {
      fail(`item "${id}" has path "${checked.path}", which does not stay inside the package`);
    }
    items.set(id, checked);
  }
  const rootId = manifest.rootModelIdentifier;
  const root = typeof rootId === "string" ? items.get(rootId) : undefined;
  if (root === undefined) return fail(`rootModelIdentifier "${rootId}" names no item`);
  const weights = [...items.values()].find((i) =>
    i.name === WEIGHTS_ITEM.name && i.author === WEIGHTS_ITEM.author
  );
  return { root, weights };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = pa[i]! - pb[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

/** Checks every blob-file value of the program against weight.bin's metadata records. */
function checkBlobReferences(
  model: Model,
  weightsPath: string | undefined,
  fail: (detail: string) => never,
): void {
  const blobs: { value: BlobValue; where: string }[] = [];
  for (const [fnName, fn] of model.program.functions) {
    for (const op of fn.block.operations) {
      const where = `op "${op.name}" of function "${fnName}"`;
      for (const value of op.attributes.values()) {
        if (value.kind === "blob") blobs.push({ value, where });
      }
      for (const bindings of op.inputs.values()) {
        for (const b of bindings) {
          if (typeof b !== "string" && b.kind === "blob") blobs.push({ value: b, where });
        }
      }
    }
  }
  if (blobs.length === 0) return;
  if (weightsPath === undefined) {
    fail(`${blobs[0]!.where} refers to weight.bin, but the package has none`);
  }
  using reader = BlobStorageReader.open(weightsPath);
  for (const { value, where } of blobs) {
    const record = reader.record(value.offsetBytes, value.dtype);
    const count = checkShape(value.shape);
    if (record.count !== count) {
      fail(
        `${where} declares ${count} elements at weight.bin offset ${value.offsetBytes}, but the ` +
          `blob holds ${record.count}`,
      );
    }
  }
}
