/**
 * The Core ML backend: runs a bundle's `.mlpackage` pieces with Core ML (the Neural Engine by
 * default) through the native bridge in ffi/coreml. Core ML programs have fixed shapes, so every
 * call runs the exported call length; the runtime pads shorter calls.
 *
 * @module
 */

import type { FunctionSpec, IoSpec, PieceSpec } from "../../bundle/manifest.ts";
import {
  type ComputeUnits,
  type CoremlLibrary,
  CoremlModel,
  openLibrary,
  type OpenOptions,
  type TensorArgument,
} from "../../ffi/coreml.ts";
import { readNeed, requirePermissions } from "../../permissions.ts";
import { elementCount } from "../../shape.ts";
import type { Backend, IoArray, LoadedFunction } from "./backend.ts";
import { compiledModelPath, defaultCacheDir, prepareCacheDir } from "./coreml_cache.ts";

const ARRAY_TYPES = { fp16: Float16Array, fp32: Float32Array, int32: Int32Array } as const;

/**
 * Pairs each input or output the manifest lists with its buffer, in the manifest's order, after
 * checking that the buffer exists and has the manifest's element type and element count.
 */
function tensorArguments(
  fn: FunctionSpec,
  kind: "input" | "output",
  specs: readonly IoSpec[],
  buffers: ReadonlyMap<string, IoArray>,
): TensorArgument[] {
  return specs.map((io) => {
    const data = buffers.get(io.name);
    const count = elementCount(io.shape);
    if (data === undefined) {
      throw new RangeError(`Cannot run function "${fn.name}" on Core ML: no ${kind} "${io.name}"`);
    }
    if (!(data instanceof ARRAY_TYPES[io.dtype]) || data.length !== count) {
      throw new RangeError(
        `Cannot run function "${fn.name}" on Core ML: ${kind} "${io.name}" must be ${io.dtype} ` +
          `[${
            io.shape.join(", ")
          }] (${count} values), got ${data.constructor.name} of ${data.length}`,
      );
    }
    return { name: io.name, dtype: io.dtype, shape: io.shape, data };
  });
}

class CoremlFunction implements LoadedFunction {
  readonly #spec: FunctionSpec;
  readonly #model: CoremlModel;

  constructor(spec: FunctionSpec, model: CoremlModel) {
    this.#spec = spec;
    this.#model = model;
  }

  run(
    callLength: number,
    inputs: ReadonlyMap<string, IoArray>,
    outputs: ReadonlyMap<string, IoArray>,
  ): Promise<void> {
    const spec = this.#spec;
    if (callLength !== spec.callLength) {
      return Promise.reject(
        new RangeError(
          `Cannot run function "${spec.name}" on Core ML with ${callLength} tokens: its program ` +
            `has a fixed call length of ${spec.callLength}; pad the call to ${spec.callLength}`,
        ),
      );
    }
    try {
      return this.#model.predict(
        tensorArguments(spec, "input", spec.inputs, inputs),
        tensorArguments(spec, "output", spec.outputs, outputs),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  [Symbol.dispose](): void {
    this.#model[Symbol.dispose]();
  }
}

/** Options of {@link CoremlBackend.create}. */
export interface CoremlBackendOptions {
  /** Path of the bridge library. @default found as `findLibrary` in ffi/coreml.ts says */
  readonly library?: string;
  /** Which processors Core ML may use. @default "cpuAndNeuralEngine" */
  readonly computeUnits?: ComputeUnits;
  /** Where compiled models are cached. @default `LLAMANE_COREML_CACHE` or ~/Library/Caches/llamane/coreml */
  readonly cacheDir?: string;
  /** Longest wait for each compile or load, in seconds. @default 600 */
  readonly timeoutSeconds?: number;
  /**
   * Have Core ML return outputs in its own arrays, copied into the caller's buffers, as it does
   * for Neural Engine outputs it cannot write in place; for testing that path. @default false
   */
  readonly declineOutputBackings?: boolean;
}

/** Runs bundles with Core ML through the native bridge. */
export class CoremlBackend implements Backend {
  readonly name = "coreml";
  readonly flexibleCallLength = false;
  /** The compute units every function is loaded with. */
  readonly computeUnits: ComputeUnits;
  /** Where compiled models are cached. */
  readonly cacheDir: string;
  readonly #library: CoremlLibrary;
  readonly #loading: Pick<OpenOptions, "timeoutSeconds" | "declineOutputBackings">;

  private constructor(
    library: CoremlLibrary,
    computeUnits: ComputeUnits,
    cacheDir: string,
    loading: Pick<OpenOptions, "timeoutSeconds" | "declineOutputBackings">,
  ) {
    this.#library = library;
    this.computeUnits = computeUnits;
    this.cacheDir = cacheDir;
    this.#loading = loading;
  }

  /**
   * Opens the bridge (needs `--allow-ffi` for its path) and prepares the cache directory (needs
   * `--allow-write` for it).
   */
  static async create(options: CoremlBackendOptions = {}): Promise<CoremlBackend> {
    const library = await openLibrary(options.library);
    const cacheDir = options.cacheDir ?? await defaultCacheDir();
    await prepareCacheDir(cacheDir);
    const { timeoutSeconds, declineOutputBackings } = options;
    return new CoremlBackend(library, options.computeUnits ?? "cpuAndNeuralEngine", cacheDir, {
      ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }),
      ...(declineOutputBackings === undefined ? {} : { declineOutputBackings }),
    });
  }

  /**
   * Loads function `fn` of a piece: compiles the package into the cache on first use, then loads
   * it with the backend's compute units. Multifunction pieces name the function; single-function
   * pieces load their default one, which needs no function selection.
   */
  async load(bundleDir: string, piece: PieceSpec, fn: FunctionSpec): Promise<LoadedFunction> {
    const packagePath = `${bundleDir}/${piece.package}`;
    await requirePermissions([readNeed(packagePath, "read the bundle")]);
    const model = await CoremlModel.open(this.#library, {
      packagePath,
      compiledPath: await compiledModelPath(packagePath, this.cacheDir),
      functionName: piece.functions.length > 1 ? fn.name : "",
      computeUnits: this.computeUnits,
      ...this.#loading,
    });
    return new CoremlFunction(fn, model);
  }

  /** The bridge stays loaded for the process; each function is released by its own dispose. */
  [Symbol.dispose](): void {}
}
