/**
 * Backend selection for `llamane run --backend auto|cpu|coreml`: `auto` takes Core ML on macOS
 * when its bridge library is present and the CPU backend otherwise; `coreml` elsewhere than macOS
 * fails with a message that says so.
 *
 * @module
 */

import {
  COMPUTE_UNITS_CODES,
  type ComputeUnits,
  CoremlUnavailableError,
  findLibrary,
} from "../../ffi/coreml.ts";
import { NativeDownloadError } from "../../ffi/native_download.ts";
import { isReadableFile } from "../../ffi/readable_file.ts";
import type { Backend } from "./backend.ts";
import { CpuBackend } from "./cpu.ts";
import { CoremlBackend } from "./coreml.ts";

/** What `--backend` accepts. */
export type BackendRequest = "auto" | "cpu" | "coreml";

/** A backend that can be created. */
export type BackendName = "cpu" | "coreml";

/** Raised for a `--backend` or `--compute_units` value that is not one of the choices. */
export class BackendChoiceError extends TypeError {
  /** Builds the message `Invalid --<flag>: expected <choices>, got "<value>"`. */
  constructor(flag: string, value: string, choices: readonly string[]) {
    super(`Invalid --${flag}: expected ${choices.join(", ")}, got "${value}"`);
    this.name = "BackendChoiceError";
  }
}

const REQUESTS: readonly BackendRequest[] = ["auto", "cpu", "coreml"];

/** Parses a `--backend` value. */
export function parseBackendRequest(value: string): BackendRequest {
  const request = REQUESTS.find((r) => r === value.toLowerCase());
  if (request === undefined) throw new BackendChoiceError("backend", value, REQUESTS);
  return request;
}

/**
 * Parses a `--compute_units` value: Core ML's Swift names (`cpuAndNeuralEngine`, `all`,
 * `cpuOnly`, `cpuAndGPU`), case-insensitively, with `_` or `-` allowed between words as in
 * coremltools' `CPU_AND_NE`; `cpuAndNE` is accepted for `cpuAndNeuralEngine`.
 */
export function parseComputeUnits(value: string): ComputeUnits {
  const key = value.replace(/[-_]/g, "").toLowerCase();
  const units = key === "cpuandne"
    ? "cpuAndNeuralEngine"
    : (Object.keys(COMPUTE_UNITS_CODES) as ComputeUnits[]).find((u) => u.toLowerCase() === key);
  if (units === undefined) {
    throw new BackendChoiceError("compute_units", value, Object.keys(COMPUTE_UNITS_CODES));
  }
  return units;
}

/** The defaults of {@link BackendOptions}, used by the selection and the CLI alike. */
export const BACKEND_DEFAULTS = {
  backend: "auto",
  computeUnits: "cpuAndNeuralEngine",
} as const satisfies { backend: BackendRequest; computeUnits: ComputeUnits };

/** Which backend to run a bundle on, and where its native library is. */
export interface BackendOptions {
  /**
   * `auto` (Core ML on macOS when its bridge is found, else the CPU backend), `cpu` or `coreml`.
   * @default BACKEND_DEFAULTS.backend
   */
  readonly backend?: BackendRequest;
  /** Core ML compute units. @default BACKEND_DEFAULTS.computeUnits */
  readonly computeUnits?: ComputeUnits;
  /** Path of the CPU backend library. @default found as ffi/cpu.ts says */
  readonly cpuLibrary?: string;
  /** Path of the Core ML bridge. @default found as ffi/coreml.ts says */
  readonly coremlLibrary?: string;
  /** Where Core ML caches compiled models. @default as runtime/backend/coreml_cache.ts says */
  readonly coremlCacheDir?: string;
}

/** Options of {@link chooseBackend} and {@link selectBackend}. */
export interface SelectBackendOptions extends BackendOptions {
  /** The operating system to decide for. @default Deno.build.os */
  readonly os?: typeof Deno.build.os;
}

async function coremlLibraryPresent(explicit: string | undefined): Promise<boolean> {
  try {
    return await isReadableFile(await findLibrary(explicit));
  } catch (error) {
    // Not found, or the prebuilt bridge could not be downloaded: auto falls back to the CPU.
    if (error instanceof Deno.errors.NotFound || error instanceof NativeDownloadError) {
      return false;
    }
    throw error;
  }
}

/**
 * Decides which backend serves a request, without loading anything: `cpu` and `coreml` as asked
 * (`coreml` only on macOS, unless an explicit bridge path is given), `auto` Core ML on macOS when
 * the bridge is found and the CPU backend otherwise.
 */
export async function chooseBackend(options: SelectBackendOptions = {}): Promise<BackendName> {
  const request = options.backend ?? BACKEND_DEFAULTS.backend;
  const os = options.os ?? Deno.build.os;
  if (request === "cpu") return "cpu";
  if (os !== "darwin" && options.coremlLibrary === undefined) {
    if (request === "coreml") throw new CoremlUnavailableError("use the Core ML backend", os);
    return "cpu";
  }
  if (request === "coreml") return "coreml";
  return await coremlLibraryPresent(options.coremlLibrary) ? "coreml" : "cpu";
}

/** Chooses a backend as {@link chooseBackend} does and creates it. */
export async function selectBackend(options: SelectBackendOptions = {}): Promise<Backend> {
  if (await chooseBackend(options) === "cpu") {
    return await CpuBackend.create(
      options.cpuLibrary === undefined ? {} : { library: options.cpuLibrary },
    );
  }
  return await CoremlBackend.create({
    ...(options.coremlLibrary === undefined ? {} : { library: options.coremlLibrary }),
    ...(options.coremlCacheDir === undefined ? {} : { cacheDir: options.coremlCacheDir }),
    computeUnits: options.computeUnits ?? BACKEND_DEFAULTS.computeUnits,
  });
}
