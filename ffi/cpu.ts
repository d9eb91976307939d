/**
 * Bindings of the CPU backend's native library (ffi/cpu, C ABI in ffi/cpu/PLAN.md): library
 * discovery, the up-front `--allow-ffi` check, and small handle classes that turn status codes
 * into errors carrying the library's own message.
 *
 * @module
 */

import { ffiNeed, requirePermissions } from "../permissions.ts";
import { describeCandidates, isReadableFile } from "./readable_file.ts";

const symbols = {
  llamane_abi_version: { parameters: [], result: "u32" }, // () -> u32
  llamane_weights_open: { parameters: ["buffer", "usize"], result: "pointer" }, // (const u8*, usize) -> Weights*
  llamane_weights_free: { parameters: ["pointer"], result: "void" }, // (Weights*)
  llamane_plan_create: { parameters: ["pointer", "buffer", "usize"], result: "pointer" }, // (const Weights*, const u8*, usize) -> Plan*
  llamane_plan_bind: { parameters: ["pointer", "u32", "usize", "buffer", "usize"], result: "i32" }, // (Plan*, u32 side, usize index, u8*, usize bytes)
  llamane_plan_run: { parameters: ["pointer"], result: "i32", nonblocking: true }, // (Plan*)
  llamane_plan_free: { parameters: ["pointer"], result: "void" }, // (Plan*)
  llamane_last_error: { parameters: ["buffer", "usize"], result: "usize" }, // (u8*, usize) -> length
} as const satisfies Deno.ForeignLibraryInterface;

/** The C ABI version these bindings speak (ffi/cpu/ABI.md). */
const ABI_VERSION = 3;

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
  for (const path of candidates) if (await isReadableFile(path)) return path;
  throw new Deno.errors.NotFound(
    `Cannot find the CPU backend library: ${await describeCandidates(candidates)}; ` +
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
  const library = Deno.dlopen(path, symbols);
  const version = library.symbols.llamane_abi_version();
  if (version !== ABI_VERSION) {
    library.close();
    throw new Error(
      `Cannot use the CPU backend library "${path}": it speaks C ABI ${version}, this llamane ` +
        `needs ${ABI_VERSION}; rebuild it with \`deno task build:native\``,
    );
  }
  opened = { path, library };
  return library;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function lastError(library: Library): string {
  const length = Number(library.symbols.llamane_last_error(null, 0n));
  const buffer = new Uint8Array(length);
  library.symbols.llamane_last_error(buffer, BigInt(length));
  return decoder.decode(buffer);
}

function check(library: Library, status: number, action: string): void {
  if (status !== 0) throw new NativeError(action, lastError(library) || `status ${status}`);
}

function handle(library: Library, pointer: Deno.PointerValue, action: string): Deno.PointerObject {
  if (pointer === null) throw new NativeError(action, lastError(library) || "no handle returned");
  return pointer;
}

/** A memory-mapped weight.bin. */
export class NativeWeights implements Disposable {
  readonly #library: Library;
  #handle: Deno.PointerValue;

  private constructor(library: Library, handle: Deno.PointerObject) {
    this.#library = library;
    this.#handle = handle;
  }

  /** Maps `path` (a piece's weight.bin). */
  static open(library: Library, path: string): NativeWeights {
    const bytes = encoder.encode(path);
    const pointer = library.symbols.llamane_weights_open(bytes, BigInt(bytes.length));
    return new NativeWeights(library, handle(library, pointer, `map "${path}"`));
  }

  /** Compiles a plan (JSON, ffi/cpu/PLAN.md) against these weights. */
  plan(json: string): NativePlan {
    const bytes = encoder.encode(json);
    const pointer = this.#library.symbols.llamane_plan_create(
      this.#handle,
      bytes,
      BigInt(bytes.length),
    );
    return new NativePlan(this.#library, handle(this.#library, pointer, "load an execution plan"));
  }

  /** Unmaps the file once no plan uses it. */
  [Symbol.dispose](): void {
    this.#library.symbols.llamane_weights_free(this.#handle);
    this.#handle = null;
  }
}

type Buffer = Float16Array | Float32Array | Int32Array;

const INPUT = 0;
const OUTPUT = 1;

/**
 * A compiled plan: runs one function at one call length. Buffers are bound one by one (a caller
 * limited to `--allow-ffi=<path>` cannot build pointer tables) and stay bound across runs, so a
 * run only rebinds the arrays that changed.
 */
export class NativePlan implements Disposable {
  readonly #library: Library;
  #handle: Deno.PointerValue;
  readonly #bound: [Buffer[], Buffer[]] = [[], []];

  /** Made by {@link NativeWeights.plan} only. */
  constructor(library: Library, handle: Deno.PointerObject) {
    this.#library = library;
    this.#handle = handle;
  }

  #bind(side: typeof INPUT | typeof OUTPUT, buffers: readonly Buffer[]): void {
    const bound = this.#bound[side];
    buffers.forEach((buffer, index) => {
      if (bound[index] === buffer) return;
      // V8 keeps tiny typed arrays inside the JS heap, where the collector may move them;
      // reading `.buffer` moves the bytes to a backing store that stays put while referenced.
      void buffer.buffer;
      const status = this.#library.symbols.llamane_plan_bind(
        this.#handle,
        side,
        BigInt(index),
        buffer,
        BigInt(buffer.byteLength),
      );
      check(this.#library, status, "bind a buffer of the CPU backend");
      // The library keeps the pointer: holding the array here keeps it alive as long.
      bound[index] = buffer;
    });
  }

  /** Runs the plan on buffers given in the plan's input and output order. */
  async run(inputs: readonly Buffer[], outputs: readonly Buffer[]): Promise<void> {
    this.#bind(INPUT, inputs);
    this.#bind(OUTPUT, outputs);
    const status = await this.#library.symbols.llamane_plan_run(this.#handle);
    check(this.#library, status, "run the model on the CPU backend");
  }

  /** Frees the plan. */
  [Symbol.dispose](): void {
    this.#library.symbols.llamane_plan_free(this.#handle);
    this.#handle = null;
  }
}
