/**
 * `manifest.json`, the bundle's table of contents: the model's shape, how it was exported, its
 * tokenizer, and every piece with the inputs and outputs of each function. Backends execute what
 * it says; nothing re-reads the checkpoint.
 *
 * @module
 */

import type { FloatDType } from "../coreml/dtype.ts";
import type { FeatureDType } from "../coreml/model.ts";
import type { ModelConfig } from "../llama/config.ts";
import { IO_CONTRACT_VERSION } from "./io_names.ts";

/** The manifest's file name inside a bundle directory. */
export const MANIFEST_FILE = "manifest.json";
/** The `format` field that marks a llamane bundle. */
export const BUNDLE_FORMAT = "llamane-bundle";
/** Version of the manifest layout below. */
export const BUNDLE_FORMAT_VERSION = 1;

/** One input or output of a function. */
export interface IoSpec {
  /** Its name in the I/O contract, e.g. `tokens`, `mask`, `k_cache_0`, `logits`. */
  readonly name: string;
  /** Element type. */
  readonly dtype: FeatureDType;
  /** Shape in a call of the function's exported length L. */
  readonly shape: readonly number[];
}

/** One function of a piece (`main`, or `prefill` and `decode`). */
export interface FunctionSpec {
  /** `main`, `prefill` or `decode`. */
  readonly name: string;
  /** Tokens per call, L. */
  readonly callLength: number;
  /** What a call feeds it. */
  readonly inputs: readonly IoSpec[];
  /** What a call returns. */
  readonly outputs: readonly IoSpec[];
}

/** One `.mlpackage` of the bundle. */
export interface PieceSpec {
  /** `embedding`, `blocks`, `head`, or `model`. */
  readonly name: string;
  /** Package directory, relative to the bundle. */
  readonly package: string;
  /** `main`, or `prefill` and `decode` sharing the piece's weights. */
  readonly functions: readonly FunctionSpec[];
  /** Bytes of its weight.bin. */
  readonly weightBytes: number;
}

/** How the bundle was exported. */
export interface ExportSpec {
  /** Float type of weights and activations. */
  readonly dtype: FloatDType;
  /** Tokens per call L of `main` or `prefill`. */
  readonly inputLen: number;
  /** Context length the export was asked for. */
  readonly maxContextLen: number;
  /** Cache slots C. */
  readonly cacheLen: number;
  /** `none`, or `<bits>,<group size>` as given to `-E`. */
  readonly embeddingQuantize: string;
  /** `none`, `c4w`, `b4w` or `c8w`. */
  readonly linearQuantize: string;
  /** Output features per part of a split linear layer. */
  readonly targetSplitSize: number;
  /** Most parts a linear layer was split into. */
  readonly maxSplits: number;
  /** Whether the model is cut into `embedding`, `blocks` and `head` pieces (else one `model`). */
  readonly graphBreaks: boolean;
  /** Whether pieces hold `prefill` and `decode` functions rather than one `main`. */
  readonly multifunction: boolean;
}

/** What the runtime needs to know about the bundled tokenizer. */
export interface TokenizerSpec {
  /** File name inside the bundle. */
  readonly file: string;
  /** `sentencepiece` or `tiktoken`. */
  readonly kind: string;
  /** Beginning-of-sequence id, or null when the tokenizer has none. */
  readonly bosId: number | null;
  /** End-of-sequence id, or null when the tokenizer has none. */
  readonly eosId: number | null;
  /** Ids that end generation. */
  readonly stopTokens: readonly number[];
}

/** The whole manifest. */
export interface BundleManifest {
  /** Always `llamane-bundle`. */
  readonly format: typeof BUNDLE_FORMAT;
  /** Version of the manifest layout; readers refuse versions they do not know. */
  readonly formatVersion: number;
  /** Version of the input and output names and shapes; readers refuse unknown versions. */
  readonly ioContractVersion: number;
  /** The llamane version that wrote it. */
  readonly writer: string;
  /** The network's shape. */
  readonly model: ModelConfig;
  /** The options it was exported with. */
  readonly export: ExportSpec;
  /** The bundled tokenizer, or null when none was bundled. */
  readonly tokenizer: TokenizerSpec | null;
  /** The `.mlpackage`s, in the order a forward call runs them. */
  readonly pieces: readonly PieceSpec[];
}

/** A bundle directory whose manifest is missing, malformed or from an unknown version. */
export class BundleError extends SyntaxError {
  /** The bundle directory. */
  readonly path: string;

  /** Builds the message `Cannot read bundle "<path>": <detail>`. */
  constructor(path: string, detail: string) {
    super(`Cannot read bundle "${path}": ${detail}`);
    this.name = "BundleError";
    this.path = path;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkIo(path: string, where: string, value: unknown): void {
  if (!Array.isArray(value)) throw new BundleError(path, `${where} must be a list`);
  for (const io of value) {
    const ok = isObject(io) && typeof io.name === "string" &&
      ["fp16", "fp32", "int32"].includes(io.dtype as string) &&
      Array.isArray(io.shape) && io.shape.every((d) => Number.isSafeInteger(d) && d > 0);
    if (!ok) throw new BundleError(path, `${where} has a malformed entry ${JSON.stringify(io)}`);
  }
}

/**
 * Checks the structure of a parsed manifest: the fields the runtime relies on exist with the
 * right types, piece packages stay inside the bundle, and the versions are known.
 */
export function checkManifest(path: string, value: unknown): BundleManifest {
  if (!isObject(value) || value.format !== BUNDLE_FORMAT) {
    throw new BundleError(path, `${MANIFEST_FILE} is not a llamane bundle manifest`);
  }
  if (
    value.formatVersion !== BUNDLE_FORMAT_VERSION || value.ioContractVersion !== IO_CONTRACT_VERSION
  ) {
    throw new BundleError(
      path,
      `format ${value.formatVersion} / I/O contract ${value.ioContractVersion} is not supported ` +
        `(this llamane reads ${BUNDLE_FORMAT_VERSION} / ${IO_CONTRACT_VERSION}); re-export the model`,
    );
  }
  if (
    !isObject(value.model) || !isObject(value.export) || !Array.isArray(value.pieces) ||
    value.pieces.length === 0
  ) {
    throw new BundleError(path, "the manifest lacks model, export or pieces");
  }
  for (const piece of value.pieces) {
    if (
      !isObject(piece) || typeof piece.package !== "string" ||
      !/^[A-Za-z0-9_-]+\.mlpackage$/.test(piece.package)
    ) {
      throw new BundleError(path, `piece ${JSON.stringify(piece)} has no valid package name`);
    }
    if (!Array.isArray(piece.functions) || piece.functions.length === 0) {
      throw new BundleError(path, `piece "${piece.name}" lists no functions`);
    }
    for (const fn of piece.functions) {
      if (!isObject(fn) || typeof fn.name !== "string" || !Number.isSafeInteger(fn.callLength)) {
        throw new BundleError(path, `piece "${piece.name}" has a malformed function`);
      }
      checkIo(path, `function "${fn.name}" of piece "${piece.name}" inputs`, fn.inputs);
      checkIo(path, `function "${fn.name}" of piece "${piece.name}" outputs`, fn.outputs);
    }
  }
  return value as unknown as BundleManifest;
}

/** Reads and checks `<bundle>/manifest.json`. */
export async function readManifest(bundle: string): Promise<BundleManifest> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${bundle}/${MANIFEST_FILE}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new BundleError(bundle, `no ${MANIFEST_FILE}: not a bundle`);
    }
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new BundleError(
      bundle,
      `${MANIFEST_FILE} is not valid JSON: ${(error as Error).message}`,
    );
  }
  return checkManifest(bundle, value);
}
