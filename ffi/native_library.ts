/**
 * What the bindings of both native libraries (the CPU backend, ffi/cpu.ts, and the Core ML bridge,
 * ffi/coreml.ts) share: where a library is looked for, opening it once per path after checking
 * `--allow-ffi` for that path and its ABI version, the error buffer every fallible call takes, the
 * one error class, and the safety net that frees a handle nobody disposed.
 *
 * @module
 */

import { ffiNeed, requirePermissions } from "../permissions.ts";
import { type PrebuiltLibrary, prebuiltLibrary } from "./prebuilt.ts";
import { describeCandidates, isReadableFile } from "./readable_file.ts";

/** A failure reported by a native library, with the library's own message. */
export class NativeError extends Error {
  constructor(action: string, message: string) {
    super(`Cannot ${action}: ${message}`);
    this.name = "NativeError";
  }
}

/** How one native library is found, named and checked. */
export interface LibraryDescription {
  /** What the library is called in messages, e.g. "the CPU backend library". */
  readonly title: string;
  /** Its file name on this system. */
  readonly fileName: string;
  /** The environment variable that may name its path. */
  readonly envVariable: string;
  /** Where cargo builds it, relative to this module's directory. */
  readonly built: URL;
  /** How to build it, for messages: "build it with ...". */
  readonly build: string;
  /** The ABI version the bindings speak. */
  readonly abiVersion: number;
  /** The option of `loadModel` that takes its path, e.g. `cpuLibrary`. */
  readonly option: string;
  /** Its name among the prebuilt release assets (ffi/prebuilt.ts). */
  readonly prebuilt: PrebuiltLibrary;
}

/** The path in the library's environment variable, when it is set and may be read. */
async function fromEnvironment(library: LibraryDescription): Promise<string | undefined> {
  const variable = library.envVariable;
  const env = await Deno.permissions.query({ name: "env", variable });
  const value = env.state === "granted" ? Deno.env.get(variable) : undefined;
  return value === "" ? undefined : value;
}

/** The cargo build of a local copy of llamane; none for remote code or a compiled binary. */
function localBuild(library: LibraryDescription): string | undefined {
  const built = library.built;
  return built.protocol === "file:" && !Deno.build.standalone
    ? decodeURIComponent(built.pathname)
    : undefined;
}

/** The file beside a compiled llamane binary. */
function besideExecutable(library: LibraryDescription): string | undefined {
  return Deno.build.standalone ? Deno.execPath().replace(/[^/\\]+$/, library.fileName) : undefined;
}

/**
 * Where a library is looked for on disk when no path is given, in order: the path in its
 * environment variable (alone, when set), the file beside a compiled llamane binary, the cargo
 * build of a local copy.
 */
export async function libraryCandidates(library: LibraryDescription): Promise<string[]> {
  const fromEnv = await fromEnvironment(library);
  if (fromEnv !== undefined) return [fromEnv];
  return [besideExecutable(library), localBuild(library)].filter((p) => p !== undefined);
}

/** Every way to provide the library that applies to this caller, for the not-found error. */
async function ways(library: LibraryDescription, download: string): Promise<string[]> {
  const variable = library.envVariable;
  const env = await Deno.permissions.query({ name: "env", variable });
  const lines = [
    `pass its path as the ${library.option} option`,
    env.state === "granted"
      ? `set ${variable} to its path`
      : `set ${variable} to its path and run with --allow-env=${variable} (without that flag ` +
        `${variable} is not read)`,
  ];
  const beside = besideExecutable(library);
  if (beside !== undefined) lines.push(`put it beside the executable, at "${beside}"`);
  const built = localBuild(library);
  if (built !== undefined) lines.push(`${library.build}, which writes "${built}"`);
  lines.push(`use the prebuilt library: ${download}`);
  return lines;
}

/**
 * `explicit`, or else the first of the candidates that is a file we may read, or else the
 * prebuilt library of this release, verified and cached (ffi/prebuilt.ts). A set environment
 * variable is the only place looked: a wrong path there is an error, never passed over.
 *
 * @throws {Deno.errors.NotFound} naming where it looked and each way to provide the library
 * @throws {NativeDownloadError} when a download is possible but fails
 */
export async function findLibrary(library: LibraryDescription, explicit?: string): Promise<string> {
  const fromEnv = explicit === undefined ? await fromEnvironment(library) : undefined;
  const candidates = explicit === undefined ? await libraryCandidates(library) : [explicit];
  for (const path of candidates) if (await isReadableFile(path)) return path;
  const looked = await describeCandidates(candidates);
  if (explicit !== undefined) {
    throw new Deno.errors.NotFound(`Cannot find ${library.title}: ${looked}`);
  }
  if (fromEnv !== undefined) {
    throw new Deno.errors.NotFound(
      `Cannot find ${library.title}: ${looked}, the path ${library.envVariable} names`,
    );
  }
  const prebuilt = await prebuiltLibrary(library.prebuilt, library.title);
  if ("path" in prebuilt) return prebuilt.path;
  const options = (await ways(library, prebuilt.unavailable)).map((w) => `\n  - ${w}`).join("");
  const where = candidates.length === 0 ? "" : `${looked}; `;
  throw new Deno.errors.NotFound(
    `Cannot find ${library.title}: ${where}any one of these provides it:${options}`,
  );
}

/** The symbol every library exports to say which ABI it implements. */
type Versioned = { readonly [name: string]: Deno.ForeignFunction };

const opened = new Map<string, Deno.DynamicLibrary<Versioned>>();

/**
 * Opens the library at `path` once per process, checking `--allow-ffi` for that exact path on
 * every call (a library opened earlier still needs the permission), and that its `versionSymbol`
 * returns the ABI version the bindings speak.
 */
export async function openNativeLibrary<S extends Versioned>(
  path: string,
  library: LibraryDescription,
  symbols: S,
  versionSymbol: keyof S & string,
): Promise<Deno.DynamicLibrary<S>> {
  await requirePermissions([ffiNeed(path, `load ${library.title}`)]);
  const known = opened.get(path);
  if (known !== undefined) return known as Deno.DynamicLibrary<S>;
  const handle = Deno.dlopen(path, symbols);
  const version = (handle.symbols[versionSymbol] as () => number)();
  if (version !== library.abiVersion) {
    handle.close();
    throw new NativeError(
      `use ${library.title} "${path}"`,
      `it implements ABI version ${version}, this llamane needs ${library.abiVersion}; ` +
        library.build,
    );
  }
  opened.set(path, handle as Deno.DynamicLibrary<Versioned>);
  return handle;
}

/** Bytes of the error buffer passed with each call (messages are cut to fit). */
const ERROR_CAPACITY = 4096;
const decoder = new TextDecoder();

/** The NUL-terminated UTF-8 text at the start of `buffer`. */
export function nulTerminated(buffer: Uint8Array): string {
  const end = buffer.indexOf(0);
  return decoder.decode(end < 0 ? buffer : buffer.subarray(0, end));
}

/**
 * The error buffer of the calls of one handle, which run one at a time: a failed call writes its
 * message there (ffi/cpu/ABI.md and ffi/coreml/ABI.md, "Errors").
 */
export class ErrorBuffer {
  /** Pass it, then its `capacity`, as a call's last two arguments. */
  readonly bytes: Uint8Array = new Uint8Array(ERROR_CAPACITY);
  /** `bytes.length`, as the `usize` argument. */
  readonly capacity: bigint = BigInt(ERROR_CAPACITY);

  /** Throws the message of a failed call (status not 0) as a {@link NativeError}. */
  check(status: number, action: string): void {
    if (status !== 0) throw this.error(action, `status ${status}`);
  }

  /** A {@link NativeError} for `action` with the message of the failed call. */
  error(action: string, fallback: string): NativeError {
    return new NativeError(action, nulTerminated(this.bytes) || fallback);
  }
}

/**
 * Fails when the memory of `view` was transferred or detached: a length of 0 then hides a buffer
 * that is gone. Reading `.buffer` also moves a small typed array's bytes out of the JS heap, where
 * the collector may move them, to a backing store that stays put while referenced: call this just
 * before passing `view` to a library that keeps its address for a run.
 */
export function requireAttached(view: ArrayBufferView, action: string): void {
  const buffer = view.buffer;
  if (buffer instanceof ArrayBuffer && buffer.detached) {
    throw new NativeError(action, "its ArrayBuffer was transferred or detached");
  }
}

/**
 * Frees native handles whose owners were collected without being disposed: a safety net, not a
 * replacement for `[Symbol.dispose]`, which frees at a known time. The callback must not refer
 * to the owner, or the owner is never collected.
 */
const collected = new FinalizationRegistry<() => void>((free) => free());

/** Frees with `free` once `owner` is collected, unless {@link forgetOnCollect} is called first. */
export function freeOnCollect(owner: object, free: () => void): void {
  collected.register(owner, free, owner);
}

/** Cancels {@link freeOnCollect}: the owner freed its handle itself. */
export function forgetOnCollect(owner: object): void {
  collected.unregister(owner);
}
