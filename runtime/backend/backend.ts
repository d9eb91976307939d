/**
 * The seam between the runtime and the engines that execute a bundle's programs: the CPU backend
 * (native library running the exported MIL) and Core ML (the Neural Engine on Apple devices).
 * A backend only runs single piece functions; chaining pieces, caches and masks are the
 * runtime's job.
 *
 * @module
 */

import type { FunctionSpec, PieceSpec } from "../../bundle/manifest.ts";

/** The typed arrays that carry function inputs and outputs. */
export type IoArray = Float16Array | Float32Array | Int32Array;

/** One piece function, loaded and ready to run. */
export interface LoadedFunction extends Disposable {
  /**
   * Runs one call. `callLength` is the exported L unless the backend accepts shorter calls (see
   * {@link Backend.flexibleCallLength}); inputs and outputs are flat row-major arrays of the
   * shapes the I/O contract gives for that length.
   */
  run(
    callLength: number,
    inputs: ReadonlyMap<string, IoArray>,
    outputs: ReadonlyMap<string, IoArray>,
  ): Promise<void>;
}

/** An engine that can load and run piece functions. */
export interface Backend extends Disposable {
  /** `cpu` or `coreml`. */
  readonly name: string;
  /**
   * Whether functions can run with fewer tokens than they were exported with. The CPU backend can
   * (a decode step then costs one token, not L); Core ML programs have fixed shapes.
   */
  readonly flexibleCallLength: boolean;
  /** The kernel set computing the calls, where the backend has several (the CPU backend's). */
  readonly kernels?: string | undefined;
  /** Loads function `fn` of a piece of the bundle at `bundleDir`. */
  load(bundleDir: string, piece: PieceSpec, fn: FunctionSpec): Promise<LoadedFunction>;
}
