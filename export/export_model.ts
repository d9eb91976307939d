/**
 * `exportModel`: a checkpoint (Meta, Hugging Face or GGUF) to a bundle of Core ML programs for the Neural Engine. Tensors
 * are read, transformed, quantized and written one at a time, so memory stays near the largest
 * tensor whatever the model size.
 *
 * @module
 */

import {
  BUNDLE_FORMAT,
  BUNDLE_FORMAT_VERSION,
  type BundleManifest,
  type FunctionSpec,
  MANIFEST_FILE,
  type PieceSpec,
} from "../bundle/manifest.ts";
import { IO_CONTRACT_VERSION } from "../bundle/io_names.ts";
import { openModel } from "../llama/open.ts";
import { expectedTensors, validateTensors } from "../llama/weights.ts";
import { measureQkLayout, QkLayoutError } from "../llama/qk_layout.ts";
import { readNeed, requirePermissions, writeNeed } from "../permissions.ts";
import {
  readCheckpointVocabularyToBundle,
  readTokenizerToBundle,
  type TokenizerToBundle,
} from "./tokenizer_bundle.ts";
import { VERSION } from "../version.ts";
import { ProgramBuilder } from "../coreml/builder.ts";
import type { FeatureDescription } from "../coreml/model.ts";
import { PackageWriter } from "../coreml/package.ts";
import type { BlobStorageWriter } from "../coreml/blob_storage.ts";
import {
  checkInputsOutsideOutput,
  checkOutputPath,
  explainWriteError,
  parentDirectory,
  StagedBundle,
} from "./bundle_directory.ts";
import type { ExportContext } from "./graph/context.ts";
import { GraphEmitter } from "./graph/emitter.ts";
import { emitPiece, pieceLayouts } from "./graph/pieces.ts";
import { chunkLayers, layerWeightBytes } from "./chunks.ts";
import { QuantizePool } from "./quantize_pool.ts";
import { WeightReader } from "./graph/weight_reader.ts";
import {
  checkOptionsForModel,
  EXPORT_DEFAULTS,
  type ExportOptions,
  formatEmbeddingQuantization,
  type ResolvedExportOptions,
  resolveExportOptions,
} from "./options.ts";
import { type TensorStorage, withCheckpointDefaults } from "./weight_storage.ts";
import {
  type ReconstructionError,
  reconstructionError,
  type TensorError,
} from "./reconstruction_error.ts";

/** What an export produced. */
export interface ExportSummary {
  /** The bundle directory. */
  readonly output: string;
  /**
   * The manifest written into the bundle (its types are in the `./bundle` entry point).
   * @internal
   */
  readonly manifest: BundleManifest;
  /** Total bytes of all weight files. */
  readonly weightBytes: number;
  /** Wall-clock time of the export, in seconds. */
  readonly seconds: number;
  /** Threads that quantized the weights: 1 when the workers could not start. */
  readonly threads: number;
  /** Things the user should know about the checkpoint, e.g. an assumed RoPE scale factor. */
  readonly warnings: readonly string[];
  /** How each weight matrix was stored, in the order written (what `keep` kept, what fell back). */
  readonly storage: readonly TensorStorage[];
  /** Where the bundled tokenizer came from, or why the bundle has none. */
  readonly tokenizerOrigin: string;
  /** How far the stored weights are from the checkpoint's: `sum (w - stored)^2 / sum w^2`. */
  readonly reconstructionError: ReconstructionError;
}

/** The folder holding a checkpoint: itself for a model folder, else the file's parent. */
async function checkpointFolder(checkpoint: string): Promise<string> {
  const status = await Deno.permissions.query({ name: "read", path: checkpoint });
  if (status.state !== "granted") return parentDirectory(checkpoint);
  try {
    return (await Deno.stat(checkpoint)).isDirectory ? checkpoint : parentDirectory(checkpoint);
  } catch {
    return parentDirectory(checkpoint);
  }
}

/**
 * The tokenizer file to bundle: the given path, or `tokenizer.model` (Meta) or `tokenizer.json`
 * (Hugging Face) beside the checkpoint, or in its model folder, if any. Without one, a GGUF
 * checkpoint's own vocabulary is bundled (see {@link tokenizerToBundle}).
 */
async function tokenizerPath(options: ResolvedExportOptions): Promise<string | undefined> {
  if (options.tokenizer !== undefined) return options.tokenizer;
  const folder = await checkpointFolder(options.checkpoint);
  for (const name of ["tokenizer.model", "tokenizer.json"]) {
    const candidate = `${folder}/${name}`;
    const status = await Deno.permissions.query({ name: "read", path: candidate });
    if (status.state !== "granted") continue;
    try {
      if ((await Deno.stat(candidate)).isFile) return candidate;
    } catch {
      // Absent: try the next name.
    }
  }
  return undefined;
}

/** The tokenizer file's, else a GGUF checkpoint's vocabulary, else none. */
async function tokenizerToBundle(
  file: string | undefined,
  checkpoint: { path: string; isGguf: boolean },
  vocabSize: number,
  chatTemplatePath: string | undefined,
): Promise<TokenizerToBundle> {
  if (file !== undefined) return await readTokenizerToBundle(file, vocabSize, chatTemplatePath);
  if (checkpoint.isGguf) {
    return await readCheckpointVocabularyToBundle(checkpoint.path, vocabSize, chatTemplatePath);
  }
  return {
    files: new Map(),
    spec: null,
    origin: "none: no tokenizer.model or tokenizer.json beside the checkpoint",
  };
}

/**
 * The functions each piece holds: `main` at L, or `prefill` at L and `decode` at 1 sharing the
 * same weights (identical constants are stored once in weight.bin).
 */
function functionsOf(options: ResolvedExportOptions): { name: string; callLength: number }[] {
  return options.multifunction
    ? [{ name: "prefill", callLength: options.inputLen }, { name: "decode", callLength: 1 }]
    : [{ name: "main", callLength: options.inputLen }];
}

function ioSpecs(features: readonly FeatureDescription[]) {
  return features.map(({ name, dtype, shape }) => ({ name, dtype, shape: [...shape] }));
}

/**
 * Exports a checkpoint to a bundle directory.
 *
 * Needs read permission for the checkpoint, params and tokenizer, and read and write permission
 * for the directory that will hold the bundle (it is staged there, then renamed into place).
 * Every option is checked before anything is written.
 *
 * @example Export the embedded model without quantization
 * ```ts ignore
 * import { exportModel } from "./export_model.ts";
 * const summary = await exportModel({
 *   checkpoint: "models/kjv-tiny/consolidated.00.pth",
 *   params: "models/kjv-tiny/params.json",
 *   output: "kjv.llamane",
 *   linearQuantize: "none",
 * });
 * console.log(summary.manifest.pieces.map((p) => p.name));
 * ```
 */
export async function exportModel(options: ExportOptions): Promise<ExportSummary> {
  try {
    return await writeBundle(options);
  } catch (error) {
    throw explainWriteError(error, options.output ?? EXPORT_DEFAULTS.output);
  }
}

async function writeBundle(options: ExportOptions): Promise<ExportSummary> {
  const started = performance.now();
  // Checked before anything is opened, then again with the checkpoint's defaults.
  const asked = resolveExportOptions(options);
  const tokenizer = await tokenizerPath(asked);
  await requirePermissions([
    readNeed(asked.checkpoint, "read the checkpoint"),
    ...(asked.params === undefined ? [] : [readNeed(asked.params, "read the params")]),
    ...(tokenizer === undefined ? [] : [readNeed(tokenizer, "read the tokenizer")]),
    ...(asked.chatTemplate === undefined
      ? []
      : [readNeed(asked.chatTemplate, "read the chat template")]),
    // Staging beside the output and renaming into place needs both on the output's directory.
    writeNeed(parentDirectory(asked.output), "write the bundle beside its output path"),
    readNeed(parentDirectory(asked.output), "stage the bundle beside its output path"),
  ]);
  await checkOutputPath(asked.output);
  await checkInputsOutsideOutput(asked.output, [
    asked.checkpoint,
    ...(asked.params === undefined ? [] : [asked.params]),
    ...(tokenizer === undefined ? [] : [tokenizer]),
  ]);

  using model = await openModel(
    { checkpoint: asked.checkpoint, params: asked.params },
    asked.ropeScaleFactor === undefined ? {} : { ropeScaleFactor: asked.ropeScaleFactor },
  );
  const { config, source } = model;
  validateTensors(asked.checkpoint, config, source.list());
  const resolved = resolveExportOptions(withCheckpointDefaults(options, config, source));
  checkOptionsForModel(resolved, config);
  if (!resolved.force) {
    const verdict = await measureQkLayout(source, config);
    if (verdict.looksRotateHalf) throw new QkLayoutError(resolved.checkpoint, verdict);
  }
  const chunks = resolved.graphBreaks
    ? chunkLayers(
      config.nLayers,
      layerWeightBytes(config, resolved, (name) => source.info(name)!.dtype),
      resolved.chunkLimits,
      resolved.numChunks,
    )
    : undefined;
  const bundledTokenizer = await tokenizerToBundle(
    tokenizer,
    { path: resolved.checkpoint, isGguf: model.layout === "gguf" },
    config.vocabSize,
    resolved.chatTemplate,
  );

  await using staged = await StagedBundle.create(resolved.output);
  const weights = new WeightReader(source);
  using pool = await QuantizePool.start(resolved.threads);
  // Each function of each piece writes its own tensors (a tied head reads the embedding again).
  const tensorsTotal = (expectedTensors(config).size + (config.tiedOutput ? 1 : 0)) *
    functionsOf(resolved).length;
  let tensorsDone = 0;
  let bytesBefore = 0;
  let currentWeights: BlobStorageWriter | undefined;
  const storage = new Map<string, TensorStorage>();
  // By checkpoint name: the functions of a multifunction piece store the same weights again.
  const linearErrors = new Map<string, TensorError>();
  let embeddingError = 0;
  const ctx: ExportContext = {
    config,
    options: resolved,
    weights,
    pool,
    weightWritten: (tensor) => {
      options.onProgress?.({
        tensorsDone: ++tensorsDone,
        tensorsTotal,
        bytesWritten: bytesBefore + (currentWeights?.sizeBytes ?? 0),
        tensor,
      });
    },
    storageChosen: (tensor, choice) => {
      if (storage.has(tensor)) return;
      storage.set(tensor, { tensor, checkpointType: source.info(tensor)!.dtype, choice });
    },
    errorMeasured: (tensor, use, relativeError) => {
      if (use === "embedding") embeddingError = relativeError;
      else if (!linearErrors.has(tensor)) linearErrors.set(tensor, { tensor, relativeError });
    },
  };

  const pieces: PieceSpec[] = [];
  for (const layout of pieceLayouts(config.nLayers, resolved.graphBreaks, chunks)) {
    const packageName = `${layout.name}.mlpackage`;
    using pkg = PackageWriter.create(`${staged.path}/${packageName}`);
    currentWeights = pkg.weights;
    const program = new ProgramBuilder({ weights: pkg.weights });
    for (const fn of functionsOf(resolved)) {
      await emitPiece(
        new GraphEmitter(program.function(fn.name), resolved.dtype),
        ctx,
        layout,
        fn.callLength,
      );
    }
    const built = program.build({
      metadata: {
        author: "llamane",
        versionString: VERSION,
        shortDescription: `Static Llama (${layout.name}) for the Apple Neural Engine`,
      },
      ...(resolved.multifunction ? { defaultFunctionName: "decode" } : {}),
    });
    pkg.finish(built);
    const weightBytes = pkg.weights.sizeBytes;
    bytesBefore += weightBytes;
    const described = resolved.multifunction
      ? built.description.functions
      : [{ name: "main", inputs: built.description.inputs, outputs: built.description.outputs }];
    const functions: FunctionSpec[] = described.map((fn, i) => ({
      name: fn.name,
      callLength: functionsOf(resolved)[i]!.callLength,
      inputs: ioSpecs(fn.inputs),
      outputs: ioSpecs(fn.outputs),
    }));
    pieces.push({ name: layout.name, package: packageName, functions, weightBytes });
  }

  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    formatVersion: BUNDLE_FORMAT_VERSION,
    ioContractVersion: IO_CONTRACT_VERSION,
    writer: `llamane ${VERSION}`,
    model: config,
    export: {
      dtype: resolved.dtype,
      inputLen: resolved.inputLen,
      maxContextLen: resolved.maxContextLen,
      cacheLen: resolved.cacheLen,
      embeddingQuantize: formatEmbeddingQuantization(resolved.embeddingQuantize),
      linearQuantize: resolved.linearQuantize,
      targetSplitSize: resolved.targetSplitSize,
      maxSplits: resolved.maxSplits,
      graphBreaks: resolved.graphBreaks,
      multifunction: resolved.multifunction,
    },
    tokenizer: bundledTokenizer.spec,
    pieces,
  };
  for (const [name, bytes] of bundledTokenizer.files) {
    await Deno.writeFile(`${staged.path}/${name}`, bytes);
  }
  await Deno.writeTextFile(
    `${staged.path}/${MANIFEST_FILE}`,
    JSON.stringify(manifest, null, 2) + "\n",
  );
  await staged.commit();
  return {
    output: resolved.output,
    manifest,
    weightBytes: bytesBefore,
    seconds: (performance.now() - started) / 1000,
    threads: pool.threads,
    warnings: model.warnings,
    storage: [...storage.values()],
    tokenizerOrigin: bundledTokenizer.origin,
    reconstructionError: reconstructionError([...linearErrors.values()], embeddingError),
  };
}
