/**
 * Bindings of the Core ML bridge (ffi/coreml, C ABI in ffi/coreml/ABI.md): a handle class that
 * binds named, typed, shaped buffers to a loaded model one call each, for each prediction, without
 * copying them. Nothing here reads or builds a pointer: buffers go in as `"buffer"` arguments and
 * handles come back as opaque `"pointer"` values, all that Deno allows a caller granted only
 * `--allow-ffi=<bridge path>`. Finding and opening the bridge is ffi/native_library.ts's job.
 *
 * @module
 */

import type { FeatureDType } from "../coreml/model.ts";
import {
  ErrorBuffer,
  findLibrary as findNativeLibrary,
  forgetOnCollect,
  freeOnCollect,
  libraryCandidates as nativeLibraryCandidates,
  type LibraryDescription,
  NativeError,
  nulTerminated,
  openNativeLibrary,
  requireAttached,
} from "./native_library.ts";

/** The ABI version these bindings speak (ABI.md). */
export const CORE_ML_ABI_VERSION = 3;

/** The arguments `open` and `compute_plan` begin with: package, cache and function, units. */
const OPENING_PARAMETERS = [
  "buffer",
  "usize",
  "buffer",
  "usize",
  "buffer",
  "usize",
  "i32",
] as const;

const symbols = {
  llamane_coreml_abi_version: { parameters: [], result: "u32" }, // (void) -> uint32_t
  llamane_coreml_open: {
    // (const u8* package, usize, const u8* compiled, usize, const u8* function, usize,
    //  i32 compute_units, u32 flags, u32 timeout_seconds, u8* error, usize error_capacity)
    //  -> Model*, null on failure
    parameters: [...OPENING_PARAMETERS, "u32", "u32", "buffer", "usize"],
    result: "pointer",
    nonblocking: true, // compiles on first use: seconds to minutes
  },
  llamane_coreml_bind: {
    // (Model*, u32 side, usize index, const u8* name, usize, const u64* shape, usize rank,
    //  u32 dtype, void* data, usize data_bytes, u8* error, usize error_capacity)
    parameters: [
      "pointer",
      "u32",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "u32",
      "buffer",
      "usize",
      "buffer",
      "usize",
    ],
    result: "i32",
  },
  llamane_coreml_predict: {
    // (Model*, u8* error, usize error_capacity): runs on the bound buffers
    parameters: ["pointer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  llamane_coreml_close: { parameters: ["pointer"], result: "void" }, // (Model*)
  llamane_coreml_compute_plan: {
    // (const u8* package, usize, const u8* compiled, usize, const u8* function, usize,
    //  i32 compute_units, u32 timeout_seconds, u8* text, usize text_capacity, u8* error,
    //  usize error_capacity)
    parameters: [...OPENING_PARAMETERS, "u32", "buffer", "usize", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened bridge. */
export type CoremlLibrary = Deno.DynamicLibrary<typeof symbols>;

/** Core ML's compute unit choices, by their Swift names. */
export type ComputeUnits = "cpuAndNeuralEngine" | "all" | "cpuOnly" | "cpuAndGPU";

/** `MLComputeUnits` raw values, which the ABI passes through. */
export const COMPUTE_UNITS_CODES: Readonly<Record<ComputeUnits, number>> = {
  cpuOnly: 0,
  cpuAndGPU: 1,
  all: 2,
  cpuAndNeuralEngine: 3,
};

/** `MLMultiArrayDataType` raw values of the manifest's element types, which the ABI passes. */
export const DTYPE_CODES: Readonly<Record<FeatureDType, number>> = {
  fp16: 0x10000 | 16,
  fp32: 0x10000 | 32,
  int32: 0x20000 | 32,
};

/** Core ML was asked for where it does not exist (it ships only with macOS and iOS). */
export class CoremlUnavailableError extends Error {
  constructor(what: string, os: string = Deno.build.os) {
    super(
      `Cannot ${what}: Core ML exists only on macOS and iOS, and this is ${os}; ` +
        "use --backend cpu (or auto, which picks the CPU backend here)",
    );
    this.name = "CoremlUnavailableError";
  }
}

const BRIDGE: LibraryDescription = {
  title: "the Core ML bridge",
  fileName: "libllamane_coreml.dylib",
  envVariable: "LLAMANE_COREML_LIB",
  built: new URL("./coreml/target/release/libllamane_coreml.dylib", import.meta.url),
  build: "build it with `ffi/coreml/build.sh` (macOS, Rust)",
  abiVersion: CORE_ML_ABI_VERSION,
  option: "coremlLibrary",
  prebuilt: "llamane_coreml",
};

/** Where the bridge is looked for, in order, when no path is given. */
export function libraryCandidates(): Promise<string[]> {
  return nativeLibraryCandidates(BRIDGE);
}

/**
 * Finds the bridge: `explicit` as given (trusted to implement ABI.md, on any system: that is how
 * the tests load a fake), else on macOS `LLAMANE_COREML_LIB`, the file beside a compiled llamane
 * binary, or the cargo build in ffi/coreml/target/release.
 */
export async function findLibrary(explicit?: string): Promise<string> {
  if (explicit !== undefined) return explicit;
  if (Deno.build.os !== "darwin") throw new CoremlUnavailableError("find the Core ML bridge");
  return await findNativeLibrary(BRIDGE);
}

/**
 * Opens the bridge once per path, after checking `--allow-ffi` for that exact path, and checks
 * that it speaks {@link CORE_ML_ABI_VERSION}.
 */
export async function openLibrary(explicit?: string): Promise<CoremlLibrary> {
  return await openNativeLibrary(
    await findLibrary(explicit),
    BRIDGE,
    symbols,
    "llamane_coreml_abi_version",
  );
}

const encoder = new TextEncoder();

/** One buffer handed to Core ML, described as the manifest describes it. */
export interface TensorArgument {
  readonly name: string;
  readonly dtype: FeatureDType;
  readonly shape: readonly number[];
  readonly data: Float16Array | Float32Array | Int32Array;
}

/** The `side` argument of `llamane_coreml_bind` (ABI.md). */
const INPUT = 0;
const OUTPUT = 1;
type Side = typeof INPUT | typeof OUTPUT;

/** Where a piece comes from and how to load it. */
export interface OpenOptions {
  /** The piece's `.mlpackage` directory. */
  readonly packagePath: string;
  /** The cache path of its compiled `.mlmodelc` (compiled there on first use). */
  readonly compiledPath: string;
  /** The function to load; empty for the default one. */
  readonly functionName: string;
  readonly computeUnits: ComputeUnits;
  /**
   * Longest wait for each step of Core ML's compiling and loading, in seconds (at least 1).
   * @default {@link DEFAULT_TIMEOUT_SECONDS}
   */
  readonly timeoutSeconds?: number;
  /**
   * Let Core ML return outputs in arrays of its own, copied into the caller's buffers, instead of
   * writing them into those buffers: the path Neural Engine outputs take, for testing it on the
   * CPU. @default false
   */
  readonly declineOutputBackings?: boolean;
}

/**
 * Default bound on each Core ML compile or load, in seconds: a large model compiles for the Neural
 * Engine in minutes, while a load that stalls (as on virtual Macs) would otherwise never return.
 */
export const DEFAULT_TIMEOUT_SECONDS = 600;

/** `open` flag of ABI.md: pass no output backings. */
const DECLINE_OUTPUT_BACKINGS = 1;

function openArguments(options: OpenOptions) {
  const texts = [options.packagePath, options.compiledPath, options.functionName].map((s) =>
    encoder.encode(s)
  );
  const timeout = options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 0xffff_ffff) {
    throw new RangeError(
      `The Core ML timeout must be a whole number of seconds >= 1, not ${timeout}`,
    );
  }
  const flags = options.declineOutputBackings === true ? DECLINE_OUTPUT_BACKINGS : 0;
  return { texts, units: COMPUTE_UNITS_CODES[options.computeUnits], flags, timeout };
}

/**
 * One loaded function of one piece. Calls on one handle (binds, predictions, close) run one at a
 * time, as ABI.md requires, and each prediction binds every buffer it uses right before it runs:
 * the bridge never uses a pointer bound for an earlier prediction, whose array the caller may have
 * transferred or dropped since.
 */
export class CoremlModel implements Disposable {
  readonly #library: CoremlLibrary;
  readonly #label: string;
  #handle: Deno.PointerValue;
  /** How many buffers are bound per side: the bridge keeps them until replaced. */
  readonly #bound: [number, number] = [0, 0];
  /** The error buffer of every call on this handle, which never overlap. */
  readonly #error = new ErrorBuffer();
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(library: CoremlLibrary, handle: Deno.PointerObject, label: string) {
    this.#library = library;
    this.#handle = handle;
    this.#label = label;
    freeOnCollect(this, () => library.symbols.llamane_coreml_close(handle));
  }

  /** Compiles the package into `compiledPath` if needed and loads the function. */
  static async open(library: CoremlLibrary, options: OpenOptions): Promise<CoremlModel> {
    const { texts, units, flags, timeout } = openArguments(options);
    const [pkg, compiled, fn] = texts as [Uint8Array, Uint8Array, Uint8Array];
    const error = new ErrorBuffer();
    const label = `${options.packagePath}${
      fn.length > 0 ? ` (function ${options.functionName})` : ""
    }`;
    const handle = await library.symbols.llamane_coreml_open(
      pkg,
      BigInt(pkg.length),
      compiled,
      BigInt(compiled.length),
      fn,
      BigInt(fn.length),
      units,
      flags,
      timeout,
      error.bytes,
      error.capacity,
    );
    if (handle === null) throw error.error(`load "${label}" with Core ML`, "no handle");
    return new CoremlModel(library, handle, label);
  }

  /**
   * Runs one prediction on `inputs`, writing `outputs` in place, in the function's input and
   * output order (the order the buffers are bound in). Calls on one handle are queued, because
   * the bridge serves one call per handle at a time.
   */
  predict(inputs: readonly TensorArgument[], outputs: readonly TensorArgument[]): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new NativeError(`run "${this.#label}"`, "the model is closed"));
    }
    const run = this.#running.then(() => this.#predict(inputs, outputs));
    this.#running = run.catch(() => {});
    return run;
  }

  async #predict(inputs: readonly TensorArgument[], outputs: readonly TensorArgument[]) {
    this.#bind(INPUT, inputs);
    this.#bind(OUTPUT, outputs);
    const error = this.#error;
    // The arrays stay referenced by this call's closure until the bridge has returned.
    const status = await this.#library.symbols.llamane_coreml_predict(
      this.#handle,
      error.bytes,
      error.capacity,
    );
    error.check(status, `run "${this.#label}" on Core ML`);
  }

  /** Binds each tensor of one side to its index, for the prediction that follows. */
  #bind(side: Side, tensors: readonly TensorArgument[]): void {
    const kind = side === INPUT ? "input" : "output";
    if (tensors.length < this.#bound[side]) {
      // ABI.md has no unbind: the bridge would feed the stale extra buffers to Core ML.
      throw new NativeError(
        `run "${this.#label}" on Core ML`,
        `${tensors.length} ${kind}s given where ${this.#bound[side]} are bound`,
      );
    }
    const error = this.#error;
    tensors.forEach((tensor, index) => {
      const action = `bind ${kind} "${tensor.name}" of "${this.#label}" for Core ML`;
      requireAttached(tensor.data, action);
      const name = encoder.encode(tensor.name);
      const shape = BigUint64Array.from(tensor.shape, (d) => BigInt(d));
      const status = this.#library.symbols.llamane_coreml_bind(
        this.#handle,
        side,
        BigInt(index),
        name,
        BigInt(name.length),
        shape,
        BigInt(shape.length),
        DTYPE_CODES[tensor.dtype],
        tensor.data,
        BigInt(tensor.data.byteLength),
        error.bytes,
        error.capacity,
      );
      error.check(status, action);
      this.#bound[side] = Math.max(this.#bound[side], index + 1);
    });
  }

  /** Releases the model once queued predictions have finished. */
  [Symbol.dispose](): void {
    if (this.#closed) return;
    this.#closed = true;
    void this.#running.then(() => {
      forgetOnCollect(this);
      this.#library.symbols.llamane_coreml_close(this.#handle);
      this.#handle = null;
    });
  }
}

/**
 * The compute plan text of one function (ABI.md, "Compute plan"): one line per operation with its
 * preferred device, estimated cost and outputs.
 */
export async function computePlanText(
  library: CoremlLibrary,
  options: OpenOptions,
): Promise<string> {
  const { texts, units, timeout } = openArguments(options);
  const [pkg, compiled, fn] = texts as [Uint8Array, Uint8Array, Uint8Array];
  const action = `plan "${options.packagePath}" with Core ML`;
  // The plan's size is unknown up front: the bridge says how much it needs when 1 MiB is short.
  let capacity = 1 << 20;
  for (;;) {
    const text = new Uint8Array(capacity);
    const error = new ErrorBuffer();
    const status = await library.symbols.llamane_coreml_compute_plan(
      pkg,
      BigInt(pkg.length),
      compiled,
      BigInt(compiled.length),
      fn,
      BigInt(fn.length),
      units,
      timeout,
      text,
      BigInt(text.length),
      error.bytes,
      error.capacity,
    );
    if (status === 0) return nulTerminated(text);
    const message = nulTerminated(error.bytes);
    const needed = Number(/needs a buffer of (\d+) bytes/.exec(message)?.[1] ?? 0);
    if (needed <= capacity) error.check(status, action);
    capacity = needed;
  }
}
