/**
 * `manifest.json`, the bundle's table of contents: the model's shape, how it was exported, its
 * tokenizer, and every piece with the inputs and outputs of each function. Backends execute what
 * it says; nothing re-reads the checkpoint.
 *
 * @module
 */

import type { FloatDType } from "../coreml/dtype.ts";
import type { FeatureDType } from "../coreml/model.ts";
import { ConfinedDirectory, UnsafeFileError } from "../files/confined.ts";
import { JsonSyntaxError, parseJson } from "../files/json.ts";
import { elementCount } from "../shape.ts";
import type { ModelConfig } from "../llama/config.ts";
import { dimensionProblem, type LimitedDimension } from "../llama/limits.ts";
import { IO_CONTRACT_VERSION } from "./io_names.ts";
import { type FieldFail, JsonFields } from "./json_fields.ts";

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

/**
 * Every way linear-layer weights are stored: `c4w` int4 per output channel (what the Neural Engine
 * runs well), `b4w` int4 per block of 32 inputs, `c8w` int8 per output channel, `b8w` int8 per block of 32 inputs, `lut4`/`lut6`
 * 4-bit or 6-bit indices into a k-means palette per group of output channels, `none` float,
 * `keep` a GGUF's own Q8_0 and Q4_0 blocks (export/weight_storage.ts).
 */
export const LINEAR_QUANTIZATIONS = [
  "none",
  "c4w",
  "b4w",
  "c8w",
  "b8w",
  "lut4",
  "lut6",
  "keep",
] as const;

/** One of {@link LINEAR_QUANTIZATIONS}. */
export type LinearQuantization = typeof LINEAR_QUANTIZATIONS[number];

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
  /** `none`, `keep`, `lut4`, `lut6` or `<bits>,<group size>` as given to `-E`. */
  readonly embeddingQuantize: string;
  /** How linear-layer weights were stored. */
  readonly linearQuantize: LinearQuantization;
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
  /** File name at the top of the bundle. */
  readonly file: string;
  /** `sentencepiece`, `tiktoken`, `tokenizer.json` (Hugging Face) or `gguf` (llama.cpp's). */
  readonly kind: "sentencepiece" | "tiktoken" | "tokenizer.json" | "gguf";
  /** Beginning-of-sequence id, or null when the tokenizer has none. */
  readonly bosId: number | null;
  /** End-of-sequence id, or null when the tokenizer has none. */
  readonly eosId: number | null;
  /** Ids that end generation. */
  readonly stopTokens: readonly number[];
  /** Whether prompts start with BOS (bundles that do not say always did). */
  readonly addBos: boolean;
  /** File name of the chat template (Jinja) at the top of the bundle, or null for none. */
  readonly chatTemplate: string | null;
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

/** Largest manifest.json read; a 1B model's is a few dozen KB. */
export const MAX_MANIFEST_BYTES = 16 << 20;
/** Most tokens one call of an exported function may take. */
export const MAX_CALL_LENGTH = 1 << 16;
/** Most cache slots a bundle may have. */
export const MAX_CACHE_LENGTH = 1 << 20;
/** Most elements one input or output may hold (1 GiB of fp16). */
export const MAX_IO_ELEMENTS = 1 << 29;

const IO_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const PIECE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const PACKAGE_NAME = /^[A-Za-z0-9_-]{1,64}\.mlpackage$/;
/** A plain file name at the top of the bundle: no directories, nothing hidden. */
const BUNDLE_FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const FUNCTION_NAMES = ["main", "prefill", "decode"] as const;

function readModel(fields: JsonFields): ModelConfig {
  const dimension = (key: LimitedDimension) => {
    const problem = dimensionProblem(key, fields.raw(key));
    if (problem !== undefined) fields.fail(key, problem);
    return fields.raw(key) as number;
  };
  const nHeads = dimension("nHeads");
  const nKvHeads = dimension("nKvHeads");
  if (nHeads % nKvHeads !== 0) fields.fail("nHeads", "must be a multiple of nKvHeads");
  const headDim = dimension("headDim");
  if (headDim % 2 !== 0) fields.fail("headDim", "must be even for RoPE");
  const scaling = fields.raw("ropeScaling") === undefined
    ? null
    : fields.objectOrNull("ropeScaling");
  return {
    dim: dimension("dim"),
    nLayers: dimension("nLayers"),
    nHeads,
    nKvHeads,
    headDim,
    hiddenDim: dimension("hiddenDim"),
    vocabSize: dimension("vocabSize"),
    normEps: fields.positive("normEps"),
    ropeTheta: fields.positive("ropeTheta"),
    ropeScaling: scaling === null ? undefined : {
      factor: scaling.positive("factor"),
      lowFreqFactor: scaling.positive("lowFreqFactor"),
      highFreqFactor: scaling.positive("highFreqFactor"),
      originalContextLength: scaling.integer("originalContextLength", 1, MAX_CACHE_LENGTH),
    },
    tiedOutput: fields.boolean("tiedOutput"),
    // Absent from bundles written before it was recorded: their caches keep no sinks.
    trainedContext: fields.raw("trainedContext") === undefined
      ? undefined
      : fields.integer("trainedContext", 1, Number.MAX_SAFE_INTEGER),
  };
}

function readExport(fields: JsonFields): ExportSpec {
  const maxContextLen = fields.integer("maxContextLen", 2, MAX_CACHE_LENGTH + MAX_CALL_LENGTH);
  return {
    dtype: fields.oneOf("dtype", ["fp16", "fp32"]),
    inputLen: fields.integer("inputLen", 1, Math.min(MAX_CALL_LENGTH, maxContextLen - 1)),
    maxContextLen,
    cacheLen: fields.integer("cacheLen", 1, Math.min(MAX_CACHE_LENGTH, maxContextLen)),
    embeddingQuantize: fields.string(
      "embeddingQuantize",
      /^(none|keep|lut4|lut6|\d{1,2},\d{1,9})$/,
      `"none", "keep", "lut4", "lut6" or "<bits>,<group>"`,
    ),
    linearQuantize: fields.oneOf("linearQuantize", LINEAR_QUANTIZATIONS),
    targetSplitSize: fields.integer("targetSplitSize", 1, MAX_CACHE_LENGTH),
    maxSplits: fields.integer("maxSplits", 1, 1024),
    graphBreaks: fields.boolean("graphBreaks"),
    multifunction: fields.boolean("multifunction"),
  };
}

function readTokenizer(fields: JsonFields, vocabSize: number): TokenizerSpec {
  const id = (key: string) => fields.integerOrNull(key, 0, vocabSize - 1);
  return {
    file: fields.string("file", BUNDLE_FILE_NAME, "a file name at the top of the bundle"),
    kind: fields.oneOf("kind", ["sentencepiece", "tiktoken", "tokenizer.json", "gguf"]),
    bosId: id("bosId"),
    eosId: id("eosId"),
    stopTokens: fields.list("stopTokens", 0, 1024, (value, where) => {
      if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) >= vocabSize) {
        fields.failAt(where, `must be a token id below ${vocabSize}`);
      }
      return value as number;
    }),
    addBos: fields.raw("addBos") === undefined ? true : fields.boolean("addBos"),
    chatTemplate: fields.raw("chatTemplate") == null
      ? null
      : fields.string("chatTemplate", BUNDLE_FILE_NAME, "a file name at the top of the bundle"),
  };
}

function readIo(value: unknown, where: string, fail: FieldFail): IoSpec {
  const io = JsonFields.of(value, where, fail);
  const name = io.string("name", IO_NAME, "an identifier");
  const dtype = io.oneOf("dtype", ["fp16", "fp32", "int32"]);
  const shape = io.list("shape", 1, 5, (d, at) => {
    if (!Number.isSafeInteger(d) || (d as number) < 1 || (d as number) > MAX_IO_ELEMENTS) {
      io.failAt(at, `must be an integer from 1 to ${MAX_IO_ELEMENTS}`);
    }
    return d as number;
  });
  if (elementCount(shape) > MAX_IO_ELEMENTS) {
    io.fail("shape", `holds more than the ${MAX_IO_ELEMENTS} elements an input or output may have`);
  }
  return { name, dtype, shape };
}

function readFunction(
  value: unknown,
  where: string,
  fail: FieldFail,
  inputLen: number,
): FunctionSpec {
  const fn = JsonFields.of(value, where, fail);
  const name = fn.oneOf("name", FUNCTION_NAMES);
  const callLength = fn.integer("callLength", 1, MAX_CALL_LENGTH);
  const expected = name === "decode" ? 1 : inputLen;
  if (callLength !== expected) fn.fail("callLength", `must be ${expected} for function "${name}"`);
  const ios = (key: string) => {
    const list = fn.list(key, 1, 4096, (v, at) => readIo(v, at, fail));
    const names = new Set(list.map((io) => io.name));
    if (names.size !== list.length) fn.fail(key, "names one value twice");
    return list;
  };
  return { name, callLength, inputs: ios("inputs"), outputs: ios("outputs") };
}

function readPiece(value: unknown, where: string, fail: FieldFail, inputLen: number): PieceSpec {
  const piece = JsonFields.of(value, where, fail);
  const functions = piece.list("functions", 1, 2, (v, at) => readFunction(v, at, fail, inputLen));
  if (new Set(functions.map((f) => f.name)).size !== functions.length) {
    piece.fail("functions", "names one function twice");
  }
  return {
    name: piece.string("name", PIECE_NAME, "a name of letters, digits, - and _"),
    package: piece.string("package", PACKAGE_NAME, "a package name ending in .mlpackage"),
    functions,
    weightBytes: piece.integer("weightBytes", 0, Number.MAX_SAFE_INTEGER),
  };
}

/**
 * Checks a parsed manifest and returns a copy holding only the fields it checked: every field the
 * runtime relies on exists with the right type, dimensions within `MODEL_LIMITS`, names
 * that cannot leave the bundle (piece packages, the tokenizer file), call lengths that agree with
 * the export, and known versions. Errors name the field, never its value.
 *
 * @throws {BundleError} naming the first field that fails
 */
export function checkManifest(path: string, value: unknown): BundleManifest {
  const fail: FieldFail = (where, detail) => {
    throw new BundleError(path, `${MANIFEST_FILE}: ${where} ${detail}`);
  };
  const top = JsonFields.of(value, "", fail);
  if (top.raw("format") !== BUNDLE_FORMAT) {
    throw new BundleError(path, `${MANIFEST_FILE} is not a llamane bundle manifest`);
  }
  const formatVersion = top.raw("formatVersion");
  const ioVersion = top.raw("ioContractVersion");
  if (formatVersion !== BUNDLE_FORMAT_VERSION || ioVersion !== IO_CONTRACT_VERSION) {
    const shown = (v: unknown) => Number.isSafeInteger(v) ? String(v) : "unknown";
    throw new BundleError(
      path,
      `format ${shown(formatVersion)} / I/O contract ${shown(ioVersion)} is not supported ` +
        `(this llamane reads ${BUNDLE_FORMAT_VERSION} / ${IO_CONTRACT_VERSION}); re-export the model`,
    );
  }
  const model = readModel(top.object("model"));
  const exported = readExport(top.object("export"));
  const tokenizer = top.objectOrNull("tokenizer");
  const pieces = top.list("pieces", 1, 64, (v, at) => readPiece(v, at, fail, exported.inputLen));
  const packages = new Set(pieces.map((p) => p.package));
  if (packages.size !== pieces.length) top.fail("pieces", "names one package twice");
  return {
    format: BUNDLE_FORMAT,
    formatVersion: BUNDLE_FORMAT_VERSION,
    ioContractVersion: IO_CONTRACT_VERSION,
    writer: top.string("writer", /^[\x20-\x7e]{0,200}$/, "printable text"),
    model,
    export: exported,
    tokenizer: tokenizer === null ? null : readTokenizer(tokenizer, model.vocabSize),
    pieces,
  };
}

/**
 * Reads and checks `<bundle>/manifest.json`. The file is read through {@link ConfinedDirectory}:
 * it must be a regular file inside the bundle, of at most {@link MAX_MANIFEST_BYTES}.
 *
 * @throws {BundleError} naming the bundle and what is wrong, never quoting the file
 */
export function readManifest(bundle: string): Promise<BundleManifest> {
  let text: string;
  try {
    text = ConfinedDirectory.open(bundle).readText(MANIFEST_FILE, MAX_MANIFEST_BYTES);
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    const isManifest = error.path.endsWith(`/${MANIFEST_FILE}`);
    const detail = isManifest && error.detail === "is missing"
      ? `no ${MANIFEST_FILE}: not a bundle`
      : `"${error.path}" ${error.detail}`;
    return Promise.reject(new BundleError(bundle, detail));
  }
  let value: unknown;
  try {
    value = parseJson(text);
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    return Promise.reject(new BundleError(bundle, `${MANIFEST_FILE} ${error.message}`));
  }
  try {
    return Promise.resolve(checkManifest(bundle, value));
  } catch (error) {
    return Promise.reject(error);
  }
}
