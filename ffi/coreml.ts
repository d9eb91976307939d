/**
 * Bindings of the Core ML bridge (ffi/coreml, C ABI in ffi/coreml/ABI.md): library discovery,
 * the up-front `--allow-ffi` check, and a handle class that marshals named, typed, shaped buffers
 * into the bridge's tensor records without copying them.
 *
 * @module
 */

import type { IoDType } from "../bundle/manifest.ts";
import { ffiNeed, requirePermissions } from "../permissions.ts";

/** The ABI version these bindings speak (ABI.md). */
export const CORE_ML_ABI_VERSION = 1;

const symbols = {
  llamane_coreml_abi_version: { parameters: [], result: "u32" }, // (void) -> uint32_t
  llamane_coreml_open: {
    // (const u8* package, usize, const u8* compiled, usize, const u8* function, usize,
    //  i32 compute_units, Model** out, u8* error, usize error_capacity)
    parameters: [
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "i32",
      "buffer",
      "buffer",
      "usize",
    ],
    result: "i32",
    nonblocking: true, // compiles on first use: seconds to minutes
  },
  llamane_coreml_predict: {
    // (const Model*, const Tensor* inputs, usize, const Tensor* outputs, usize, u8* error, usize)
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  llamane_coreml_close: { parameters: ["pointer"], result: "void" }, // (Model*)
  llamane_coreml_compute_plan: {
    // (const u8* package, usize, const u8* compiled, usize, const u8* function, usize,
    //  i32 compute_units, u8* text, usize text_capacity, u8* error, usize error_capacity)
    parameters: [
      "buffer",
      "usize",
      "buffer",
      "usize",
      "buffer",
      "usize",
      "i32",
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
export const DTYPE_CODES: Readonly<Record<IoDType, number>> = {
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

/** Whether `path` is a file; a denied read permission counts as absent. */
export async function isFile(path: string): Promise<boolean> {
  const status = await Deno.permissions.query({ name: "read", path });
  if (status.state !== "granted") return false;
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

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
  for (const path of candidates) if (await isFile(path)) return path;
  throw new Deno.errors.NotFound(
    `Cannot find the Core ML bridge: looked at ${candidates.map((c) => `"${c}"`).join(", ")}; ` +
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
  readonly dtype: IoDType;
  readonly shape: readonly number[];
  readonly data: Float16Array | Float32Array | Int32Array;
}

/** 8-byte words of one `LlamaneCoremlTensor` record (ABI.md). */
const TENSOR_RECORD_WORDS = 7;

/**
 * Lays out `tensors` as ABI.md's records. The returned `keepAlive` holds the name and shape
 * arrays the records point to: keep it referenced until the call that uses the table returns.
 */
export function tensorTable(
  tensors: readonly TensorArgument[],
): { table: BigUint64Array; keepAlive: readonly ArrayBufferView[] } {
  // Never empty, so that the table is a real pointer even for a call without outputs.
  const table = new BigUint64Array(Math.max(1, tensors.length * TENSOR_RECORD_WORDS));
  const keepAlive: ArrayBufferView[] = [];
  const address = (view: ArrayBufferView) =>
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(view as BufferSource)));
  tensors.forEach((tensor, i) => {
    const name = encoder.encode(tensor.name);
    const shape = BigUint64Array.from(tensor.shape, (d) => BigInt(d));
    keepAlive.push(name, shape, tensor.data);
    table.set([
      name.length === 0 ? 0n : address(name),
      BigInt(name.length),
      address(tensor.data),
      BigInt(tensor.data.byteLength),
      address(shape),
      BigInt(shape.length),
      BigInt(DTYPE_CODES[tensor.dtype]),
    ], i * TENSOR_RECORD_WORDS);
  });
  return { table, keepAlive };
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
}

function openArguments(options: OpenOptions) {
  const texts = [options.packagePath, options.compiledPath, options.functionName].map((s) =>
    encoder.encode(s)
  );
  return { texts, units: COMPUTE_UNITS_CODES[options.computeUnits] };
}

/** One loaded function of one piece. Predictions on one handle run one at a time. */
export class CoremlModel implements Disposable {
  readonly #library: CoremlLibrary;
  readonly #label: string;
  #handle: Deno.PointerValue;
  #running: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(library: CoremlLibrary, handle: Deno.PointerValue, label: string) {
    this.#library = library;
    this.#handle = handle;
    this.#label = label;
  }

  /** Compiles the package into `compiledPath` if needed and loads the function. */
  static async open(library: CoremlLibrary, options: OpenOptions): Promise<CoremlModel> {
    const { texts, units } = openArguments(options);
    const [pkg, compiled, fn] = texts as [Uint8Array, Uint8Array, Uint8Array];
    const out = new BigUint64Array(1);
    const error = new Uint8Array(ERROR_CAPACITY);
    const label = `${options.packagePath}${
      fn.length > 0 ? ` (function ${options.functionName})` : ""
    }`;
    const status = await library.symbols.llamane_coreml_open(
      pkg,
      BigInt(pkg.length),
      compiled,
      BigInt(compiled.length),
      fn,
      BigInt(fn.length),
      units,
      out,
      error,
      BigInt(error.length),
    );
    check(status, error, `load "${label}" with Core ML`);
    return new CoremlModel(library, Deno.UnsafePointer.create(out[0]!), label);
  }

  /**
   * Runs one prediction on `inputs`, writing `outputs` in place. Calls on one handle are queued,
   * because the bridge serves one call per handle at a time.
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
    const ins = tensorTable(inputs);
    const outs = tensorTable(outputs);
    const error = new Uint8Array(ERROR_CAPACITY);
    const status = await this.#library.symbols.llamane_coreml_predict(
      this.#handle,
      ins.table,
      BigInt(inputs.length),
      outs.table,
      BigInt(outputs.length),
      error,
      BigInt(error.length),
    );
    // The tables point into these arrays; they must outlive the native call.
    void [ins.keepAlive, outs.keepAlive];
    check(status, error, `run "${this.#label}" on Core ML`);
  }

  /** Releases the model once queued predictions have finished. */
  [Symbol.dispose](): void {
    if (this.#closed) return;
    this.#closed = true;
    void this.#running.then(() => {
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
  const { texts, units } = openArguments(options);
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
