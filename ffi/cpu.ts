/**
 * Bindings of the CPU backend's native library (ffi/cpu, C ABI in ffi/cpu/PLAN.md): library
 * discovery, the up-front `--allow-ffi` check, and small handle classes that turn status codes
 * into errors carrying the library's own message.
 *
 * @module
 */

import { ffiNeed, requirePermissions } from "../permissions.ts";

const symbols = {
  llamane_weights_open: { parameters: ["buffer", "usize", "buffer"], result: "i32" }, // (const u8*, usize, Weights**)
  llamane_weights_free: { parameters: ["pointer"], result: "void" }, // (Weights*)
  llamane_plan_create: { parameters: ["pointer", "buffer", "usize", "buffer"], result: "i32" }, // (const Weights*, const u8*, usize, Plan**)
  llamane_plan_run: {
    // (Plan*, u8* const* inputs, const usize* input_bytes, usize, u8* const* outputs, const usize* output_bytes, usize)
    parameters: ["pointer", "buffer", "buffer", "usize", "buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  llamane_plan_free: { parameters: ["pointer"], result: "void" }, // (Plan*)
  llamane_last_error: { parameters: ["buffer", "usize"], result: "usize" }, // (u8*, usize) -> length
} as const satisfies Deno.ForeignLibraryInterface;

type Library = Deno.DynamicLibrary<typeof symbols>;

/** A failure reported by the native library. */
export class NativeError extends Error {
  constructor(action: string, message: string) {
    super(`Cannot ${action}: ${message}`);
    this.name = "NativeError";
  }
}

function libraryFileName(): string {
  switch (Deno.build.os) {
    case "darwin":
      return "libllamane_cpu.dylib";
    case "windows":
      return "llamane_cpu.dll";
    default:
      return "libllamane_cpu.so";
  }
}

async function exists(path: string): Promise<boolean> {
  const status = await Deno.permissions.query({ name: "read", path });
  if (status.state !== "granted") return false;
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Where the library is looked for, in order. */
export async function libraryCandidates(explicit?: string): Promise<string[]> {
  if (explicit !== undefined) return [explicit];
  const env = await Deno.permissions.query({ name: "env", variable: "LLAMANE_CPU_LIB" });
  const fromEnv = env.state === "granted" ? Deno.env.get("LLAMANE_CPU_LIB") : undefined;
  if (fromEnv !== undefined && fromEnv !== "") return [fromEnv];
  const name = libraryFileName();
  const beside = Deno.execPath().replace(/[^/\\]+$/, name);
  const built = new URL(`./cpu/target/release/${name}`, import.meta.url);
  return built.protocol === "file:" ? [beside, decodeURIComponent(built.pathname)] : [beside];
}

/**
 * Finds the library: the explicit path, `LLAMANE_CPU_LIB`, the file beside a compiled llamane
 * binary, or the cargo build in ffi/cpu/target/release.
 */
export async function findLibrary(explicit?: string): Promise<string> {
  const candidates = await libraryCandidates(explicit);
  for (const path of candidates) if (await exists(path)) return path;
  throw new Deno.errors.NotFound(
    `Cannot find the CPU backend library: looked at ${
      candidates.map((c) => `"${c}"`).join(", ")
    }; ` +
      "build it with `deno task build:native` or set LLAMANE_CPU_LIB",
  );
}

let opened: { path: string; library: Library } | undefined;

/** Opens the library once per process, after checking `--allow-ffi` for its exact path. */
export async function openLibrary(explicit?: string): Promise<Library> {
  const path = await findLibrary(explicit);
  if (opened !== undefined) {
    if (opened.path !== path) {
      throw new Error(`Cannot load "${path}": "${opened.path}" is already loaded`);
    }
    return opened.library;
  }
  await requirePermissions([ffiNeed(path, "load the CPU backend library")]);
  opened = { path, library: Deno.dlopen(path, symbols) };
  return opened.library;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function check(library: Library, status: number, action: string): void {
  if (status === 0) return;
  const length = Number(library.symbols.llamane_last_error(null, 0n));
  const buffer = new Uint8Array(length);
  library.symbols.llamane_last_error(buffer, BigInt(length));
  throw new NativeError(action, decoder.decode(buffer) || `status ${status}`);
}

function outPointer(): BigUint64Array {
  return new BigUint64Array(1);
}

/** A memory-mapped weight.bin. */
export class NativeWeights implements Disposable {
  readonly #library: Library;
  #handle: Deno.PointerValue;

  private constructor(library: Library, handle: Deno.PointerValue) {
    this.#library = library;
    this.#handle = handle;
  }

  /** Maps `path` (a piece's weight.bin). */
  static open(library: Library, path: string): NativeWeights {
    const bytes = encoder.encode(path);
    const out = outPointer();
    check(
      library,
      library.symbols.llamane_weights_open(bytes, BigInt(bytes.length), out),
      `map "${path}"`,
    );
    return new NativeWeights(library, Deno.UnsafePointer.create(out[0]!));
  }

  /** Compiles a plan (JSON, ffi/cpu/PLAN.md) against these weights. */
  plan(json: string): NativePlan {
    const bytes = encoder.encode(json);
    const out = outPointer();
    check(
      this.#library,
      this.#library.symbols.llamane_plan_create(this.#handle, bytes, BigInt(bytes.length), out),
      "load an execution plan",
    );
    return new NativePlan(this.#library, Deno.UnsafePointer.create(out[0]!));
  }

  /** Unmaps the file once no plan uses it. */
  [Symbol.dispose](): void {
    this.#library.symbols.llamane_weights_free(this.#handle);
    this.#handle = null;
  }
}

type Buffer = Float16Array | Float32Array | Int32Array;

function pointerTable(buffers: readonly Buffer[]): [BigUint64Array, BigUint64Array] {
  const pointers = new BigUint64Array(buffers.length);
  const lengths = new BigUint64Array(buffers.length);
  buffers.forEach((buffer, i) => {
    pointers[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
    lengths[i] = BigInt(buffer.byteLength);
  });
  return [pointers, lengths];
}

/** A compiled plan: runs one function at one call length. */
export class NativePlan implements Disposable {
  readonly #library: Library;
  #handle: Deno.PointerValue;

  /** Made by {@link NativeWeights.plan} only. */
  constructor(library: Library, handle: Deno.PointerValue) {
    this.#library = library;
    this.#handle = handle;
  }

  /** Runs the plan on buffers given in the plan's input and output order. */
  async run(inputs: readonly Buffer[], outputs: readonly Buffer[]): Promise<void> {
    const [inPointers, inLengths] = pointerTable(inputs);
    const [outPointers, outLengths] = pointerTable(outputs);
    const status = await this.#library.symbols.llamane_plan_run(
      this.#handle,
      inPointers,
      inLengths,
      BigInt(inputs.length),
      outPointers,
      outLengths,
      BigInt(outputs.length),
    );
    check(this.#library, status, "run the model on the CPU backend");
  }

  /** Frees the plan. */
  [Symbol.dispose](): void {
    this.#library.symbols.llamane_plan_free(this.#handle);
    this.#handle = null;
  }
}
