/**
 * Bindings of the CPU backend's native library (ffi/cpu, C ABI in ffi/cpu/ABI.md): handle classes
 * that turn status codes into errors carrying the library's own message, bind every buffer for
 * each run, and never free a plan under a running call. Finding and opening the library is
 * ffi/native_library.ts's job.
 *
 * @module
 */

import {
  ErrorBuffer,
  findLibrary as findNativeLibrary,
  forgetOnCollect,
  freeOnCollect,
  type LibraryDescription,
  NativeError,
  nulTerminated,
  openNativeLibrary,
  requireAttached,
} from "./native_library.ts";
import { libraryFileName } from "./prebuilt.ts";

export { NativeError };

const symbols = {
  llamane_abi_version: { parameters: [], result: "u32" }, // () -> u32
  // (const u8* path, usize, u8* error, usize error_capacity) -> Weights*, null on failure
  llamane_weights_open: { parameters: ["buffer", "usize", "buffer", "usize"], result: "pointer" },
  llamane_weights_free: { parameters: ["pointer"], result: "void" }, // (Weights*)
  llamane_plan_create: {
    // (const Weights*, const u8* json, usize, u8* error, usize error_capacity) -> Plan*
    parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
    result: "pointer",
  },
  llamane_plan_bind: {
    // (Plan*, u32 side, usize index, u8*, usize bytes, u8* error, usize error_capacity)
    parameters: ["pointer", "u32", "usize", "buffer", "usize", "buffer", "usize"],
    result: "i32",
  },
  llamane_plan_run: {
    // (Plan*, u8* error, usize error_capacity): runs on the buffers bound for this run
    parameters: ["pointer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  llamane_plan_free: { parameters: ["pointer"], result: "void" }, // (Plan*)
  llamane_kernel_set: {
    // (u8* name, usize name_capacity, u8* error, usize error_capacity); optional: libraries built
    // before it have ABI 4 too
    parameters: ["buffer", "usize", "buffer", "usize"],
    result: "i32",
    optional: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

type Library = Deno.DynamicLibrary<typeof symbols>;

const CPU_LIBRARY: LibraryDescription = {
  title: "the CPU backend library",
  fileName: libraryFileName("llamane_cpu"),
  envVariable: "LLAMANE_CPU_LIB",
  built: new URL(`./cpu/target/release/${libraryFileName("llamane_cpu")}`, import.meta.url),
  build: "build it with `deno task build:native`",
  abiVersion: 4,
  option: "cpuLibrary",
  prebuilt: "llamane_cpu",
};

/**
 * Finds the library: the explicit path, `LLAMANE_CPU_LIB`, the file beside a compiled llamane
 * binary, or the cargo build in ffi/cpu/target/release.
 */
export async function findLibrary(explicit?: string): Promise<string> {
  return await findNativeLibrary(CPU_LIBRARY, explicit);
}

/** Opens the library once per path, after checking `--allow-ffi` for it and its ABI version. */
export async function openLibrary(explicit?: string): Promise<Library> {
  return await openNativeLibrary(
    await findLibrary(explicit),
    CPU_LIBRARY,
    symbols,
    "llamane_abi_version",
  );
}

const encoder = new TextEncoder();

/**
 * The kernel set the library computes with (`avx512`, `avxvnni`, `avx2`, `i8mm`, `dotprod`, `neon`,
 * `scalar`), or undefined for a library too old to say. Throws when `LLAMANE_CPU_KERNELS` names a
 * set this CPU cannot run.
 */
export function kernelSet(library: Library): string | undefined {
  const kernelSet = library.symbols.llamane_kernel_set;
  if (kernelSet === null) return undefined;
  const name = new Uint8Array(16);
  const error = new ErrorBuffer();
  error.check(
    kernelSet(name, BigInt(name.length), error.bytes, error.capacity),
    "select CPU kernels",
  );
  return nulTerminated(name);
}

/** A memory-mapped weight.bin. */
export class NativeWeights implements Disposable {
  readonly #library: Library;
  #handle: Deno.PointerValue;

  private constructor(library: Library, handle: Deno.PointerObject) {
    this.#library = library;
    this.#handle = handle;
    freeOnCollect(this, () => library.symbols.llamane_weights_free(handle));
  }

  /** Maps `path` (a piece's weight.bin). */
  static open(library: Library, path: string): NativeWeights {
    const bytes = encoder.encode(path);
    const error = new ErrorBuffer();
    const handle = library.symbols.llamane_weights_open(
      bytes,
      BigInt(bytes.length),
      error.bytes,
      error.capacity,
    );
    if (handle === null) throw error.error(`map "${path}"`, "no handle returned");
    return new NativeWeights(library, handle);
  }

  /** Compiles a plan (JSON, ffi/cpu/PLAN.md) against these weights. */
  plan(json: string): NativePlan {
    if (this.#handle === null) {
      throw new NativeError("load an execution plan", "the weights are disposed");
    }
    const bytes = encoder.encode(json);
    const error = new ErrorBuffer();
    const handle = this.#library.symbols.llamane_plan_create(
      this.#handle,
      bytes,
      BigInt(bytes.length),
      error.bytes,
      error.capacity,
    );
    if (handle === null) throw error.error("load an execution plan", "no handle returned");
    return new NativePlan(this.#library, handle);
  }

  /** Unmaps the file once no plan uses it. */
  [Symbol.dispose](): void {
    if (this.#handle === null) return;
    forgetOnCollect(this);
    this.#library.symbols.llamane_weights_free(this.#handle);
    this.#handle = null;
  }
}

type Buffer = Float16Array | Float32Array | Int32Array;

const INPUT = 0;
const OUTPUT = 1;

/**
 * A compiled plan: runs one function at one call length. Runs are queued, one at a time, and each
 * binds every buffer it uses, one call each (a caller limited to `--allow-ffi=<path>` cannot build
 * pointer tables): the library never writes through a pointer from an earlier run, whose buffer
 * the caller may have transferred or dropped since. Disposing frees the plan once the queued runs
 * have finished; runs asked for afterwards fail.
 */
export class NativePlan implements Disposable {
  readonly #library: Library;
  #handle: Deno.PointerValue;
  readonly #error = new ErrorBuffer();
  #running: Promise<void> = Promise.resolve();
  #disposed = false;

  /** Made by {@link NativeWeights.plan} only. */
  constructor(library: Library, handle: Deno.PointerObject) {
    this.#library = library;
    this.#handle = handle;
    freeOnCollect(this, () => library.symbols.llamane_plan_free(handle));
  }

  /** Runs the plan on buffers given in the plan's input and output order, after queued runs. */
  run(inputs: readonly Buffer[], outputs: readonly Buffer[]): Promise<void> {
    const run = this.#running.then(() => this.#run(inputs, outputs));
    this.#running = run.catch(() => {});
    return run;
  }

  async #run(inputs: readonly Buffer[], outputs: readonly Buffer[]): Promise<void> {
    const action = "run the model on the CPU backend";
    if (this.#disposed) throw new NativeError(action, "the model is disposed");
    this.#bind(INPUT, inputs);
    this.#bind(OUTPUT, outputs);
    const error = this.#error;
    // The arrays stay referenced by this call's closure until the library has returned.
    const status = await this.#library.symbols.llamane_plan_run(
      this.#handle,
      error.bytes,
      error.capacity,
    );
    error.check(status, action);
  }

  #bind(side: typeof INPUT | typeof OUTPUT, buffers: readonly Buffer[]): void {
    const kind = side === INPUT ? "input" : "output";
    buffers.forEach((buffer, index) => {
      const action = `bind ${kind} ${index} of the CPU backend`;
      requireAttached(buffer, action);
      const status = this.#library.symbols.llamane_plan_bind(
        this.#handle,
        side,
        BigInt(index),
        buffer,
        BigInt(buffer.byteLength),
        this.#error.bytes,
        this.#error.capacity,
      );
      this.#error.check(status, action);
    });
  }

  /** Frees the plan once the runs queued so far have finished. */
  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    void this.#running.then(() => {
      forgetOnCollect(this);
      this.#library.symbols.llamane_plan_free(this.#handle);
      this.#handle = null;
    });
  }
}
