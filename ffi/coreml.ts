/**
 * Bindings of the Core ML bridge (ffi/coreml, C ABI in ffi/coreml/ABI.md): library discovery,
 * the up-front `--allow-ffi` check, and a handle class that binds named, typed, shaped buffers to
 * a loaded model one call each, without copying them. Nothing here reads or builds a pointer:
 * buffers go in as `"buffer"` arguments and handles come back as opaque `"pointer"` values, all
 * that Deno allows a caller granted only `--allow-ffi=<bridge path>`.
 *
 * @module
 */

import type { FeatureDType } from "../coreml/model.ts";
import { ffiNeed, requirePermissions } from "../permissions.ts";
import { describeCandidates, isReadableFile } from "./readable_file.ts";

/** The ABI version these bindings speak (ABI.md). */
export const CORE_ML_ABI_VERSION = 3;

const symbols = {
  llamane_coreml_abi_version: { parameters: [], result: "u32" }, // (void) -> uint32_t
  llamane_coreml_open: {
    // (const u8* package, usize, const u8* compiled, usize, const u8* function, usize,
    //  i32 compute_units, u32 flags, u32 timeout_seconds, u8* error, usize error_capacity)
    //  -> Model*, null on failure
    parameters: [
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "i32",
      "u32",
      "u32",
      "buffer",
      "usize",
    ],
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
    parameters: [
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "i32",
      "u32",
      "buffer",
      "usize",
      "buffer",
      "usize",
    ],
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

/** A failure reported by the Core ML bridge, with its own message. */
export class CoremlError extends Error {
  constructor(action: string, message: string) {
    super(`Cannot ${action}: ${message}`);
    this.name = "CoremlError";
  }
}

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

const LIBRARY_NAME = "libllamane_coreml.dylib";

/** Where the bridge is looked for, in order, when no path is given. */
export async function libraryCandidates(): Promise<string[]> {
  const env = await Deno.permissions.query({ name: "env", variable: "LLAMANE_COREML_LIB" });
  const fromEnv = env.state === "granted" ? Deno.env.get("LLAMANE_COREML_LIB") : undefined;
  if (fromEnv !== undefined && fromEnv !== "") return [fromEnv];
  const beside = Deno.execPath().replace(/[^/\\]+$/, LIBRARY_NAME);
  const built = new URL(`./coreml/target/release/${LIBRARY_NAME}`, import.meta.url);
  return built.protocol === "file:" ? [beside, decodeURIComponent(built.pathname)] : [beside];
}

/**
 * Finds the bridge: `explicit` as given (trusted to implement ABI.md, on any system: that is how
 * the tests load a fake), else on macOS `LLAMANE_COREML_LIB`, the file beside a compiled llamane
 * binary, or the cargo build in ffi/coreml/target/release.
 */
export async function findLibrary(explicit?: string): Promise<string> {
  if (explicit !== undefined) return explicit;
  if (Deno.build.os !== "darwin") throw new CoremlUnavailableError("find the Core ML bridge");
  const candidates = await libraryCandidates();
  for (const path of candidates) if (await isReadableFile(path)) return path;
  throw new Deno.errors.NotFound(
    `Cannot find the Core ML bridge: ${await describeCandidates(candidates)}; ` +
      "build it with `ffi/coreml/build.sh` (macOS, Rust) or set LLAMANE_COREML_LIB",
  );
}

const opened = new Map<string, CoremlLibrary>();

/**
 * Opens the bridge once per path, after checking `--allow-ffi` for that exact path, and checks
 * that it speaks {@link CORE_ML_ABI_VERSION}.
 */
export async function openLibrary(explicit?: string): Promise<CoremlLibrary> {
  const path = await findLibrary(explicit);
  // Checked on every call, not only the first: a reused library still needs the permission.
  await requirePermissions([ffiNeed(path, "load the Core ML bridge")]);
  const known = opened.get(path);
  if (known !== undefined) return known;
  const library = Deno.dlopen(path, symbols);
  const version = library.symbols.llamane_coreml_abi_version();
  if (version !== CORE_ML_ABI_VERSION) {
    library.close();
    throw new CoremlError(
      `use the Core ML bridge "${path}"`,
      `it implements ABI version ${version}, this llamane needs ${CORE_ML_ABI_VERSION}; ` +
        "rebuild it with `ffi/coreml/build.sh`",
    );
  }
  opened.set(path, library);
  return library;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Bytes of the per-call error buffer (ABI.md: messages are cut to fit). */
const ERROR_CAPACITY = 4096;

function nulTerminated(buffer: Uint8Array): string {
  const end = buffer.indexOf(0);
  return decoder.decode(end < 0 ? buffer : buffer.subarray(0, end));
}

function check(status: number, error: Uint8Array, action: string): void {
  if (status !== 0) throw new CoremlError(action, nulTerminated(error) || `status ${status}`);
}

/** One buffer handed to Core ML, described as the manifest describes it. */
export interface TensorArgument {
  readonly name: string;
  readonly dtype: FeatureDType;
  readonly shape: readonly number[];
  readonly data: Float16Array | Float32Array | Int32Array;
}

/** A tensor as bound, with the byte length its buffer had then. */
interface BoundTensor extends TensorArgument {
  readonly bytes: number;
}

/** The `side` argument of `llamane_coreml_bind` (ABI.md). */
const INPUT = 0;
const OUTPUT = 1;
type Side = typeof INPUT | typeof OUTPUT;

/**
 * Whether `bound` describes the same live buffer, name, type and shape as `tensor`. A typed array
 * whose buffer was transferred since it was bound is not the same: its old memory is no longer
 * its own, so it is bound again (and refused, being empty).
 */
function sameBinding(bound: BoundTensor | undefined, tensor: TensorArgument): boolean {
  // A detached buffer reads as 0 bytes, which no bound tensor has.
  return bound !== undefined && bound.data === tensor.data &&
    bound.bytes === tensor.data.byteLength && bound.name === tensor.name &&
    bound.dtype === tensor.dtype && bound.shape.length === tensor.shape.length &&
    bound.shape.every((d, i) => d === tensor.shape[i]);
}

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
 * time, as ABI.md requires; buffers stay bound across predictions, so a prediction rebinds only
 * the ones that changed.
 */
export class CoremlModel implements Disposable {
  readonly #library: CoremlLibrary;
  readonly #label: string;
  #handle: Deno.PointerValue;
  /** What is bound per side; holding the arrays keeps alive the memory the bridge points to. */
  readonly #bound: [BoundTensor[], BoundTensor[]] = [[], []];
  /** The error buffer of every call on this handle, which never overlap. */
  readonly #error = new Uint8Array(ERROR_CAPACITY);
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(library: CoremlLibrary, handle: Deno.PointerObject, label: string) {
    this.#library = library;
    this.#handle = handle;
    this.#label = label;
  }

  /** Compiles the package into `compiledPath` if needed and loads the function. */
  static async open(library: CoremlLibrary, options: OpenOptions): Promise<CoremlModel> {
    const { texts, units, flags, timeout } = openArguments(options);
    const [pkg, compiled, fn] = texts as [Uint8Array, Uint8Array, Uint8Array];
    const error = new Uint8Array(ERROR_CAPACITY);
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
      error,
      BigInt(error.length),
    );
    if (handle === null) {
      throw new CoremlError(`load "${label}" with Core ML`, nulTerminated(error) || "no handle");
    }
    return new CoremlModel(library, handle, label);
  }

  /**
   * Runs one prediction on `inputs`, writing `outputs` in place, in the function's input and
   * output order (the order the buffers are bound in). Calls on one handle are queued, because
   * the bridge serves one call per handle at a time. Each array stays bound, and referenced here,
   * until another takes its place or the model is disposed: do not transfer its buffer meanwhile.
   */
  predict(inputs: readonly TensorArgument[], outputs: readonly TensorArgument[]): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new CoremlError(`run "${this.#label}"`, "the model is closed"));
    }
    const run = this.#running.then(() => this.#predict(inputs, outputs));
    this.#running = run.catch(() => {});
    return run;
  }

  async #predict(inputs: readonly TensorArgument[], outputs: readonly TensorArgument[]) {
    this.#bind(INPUT, inputs);
    this.#bind(OUTPUT, outputs);
    const error = this.#error;
    const status = await this.#library.symbols.llamane_coreml_predict(
      this.#handle,
      error,
      BigInt(error.length),
    );
    check(status, error, `run "${this.#label}" on Core ML`);
  }

  /** Binds each tensor of one side to its index, skipping those bound as they are already. */
  #bind(side: Side, tensors: readonly TensorArgument[]): void {
    const bound = this.#bound[side];
    const kind = side === INPUT ? "input" : "output";
    if (tensors.length < bound.length) {
      // ABI.md has no unbind: the bridge would feed the stale extra buffers to Core ML.
      throw new CoremlError(
        `run "${this.#label}" on Core ML`,
        `${tensors.length} ${kind}s given where ${bound.length} are bound`,
      );
    }
    const error = this.#error;
    tensors.forEach((tensor, index) => {
      if (sameBinding(bound[index], tensor)) return;
      // V8 keeps small typed arrays inside the JS heap, where the collector may move them;
      // reading `.buffer` moves the bytes to a backing store that stays put while referenced.
      void tensor.data.buffer;
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
        error,
        BigInt(error.length),
      );
      check(status, error, `bind ${kind} "${tensor.name}" of "${this.#label}" for Core ML`);
      // The bridge keeps the data pointer: holding the array here keeps it alive as long.
      bound[index] = { ...tensor, shape: [...tensor.shape], bytes: tensor.data.byteLength };
    });
  }

  /** Releases the model, and the buffers bound to it, once queued predictions have finished. */
  [Symbol.dispose](): void {
    if (this.#closed) return;
    this.#closed = true;
    void this.#running.then(() => {
      this.#library.symbols.llamane_coreml_close(this.#handle);
      this.#handle = null;
      this.#bound.forEach((side) => side.length = 0);
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
    const error = new Uint8Array(ERROR_CAPACITY);
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
      error,
      BigInt(error.length),
    );
    if (status === 0) return nulTerminated(text);
    const needed = Number(/needs a buffer of (\d+) bytes/.exec(nulTerminated(error))?.[1] ?? 0);
    if (needed <= capacity) check(status, error, action);
    capacity = needed;
  }
}
