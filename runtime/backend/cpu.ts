/**
 * The CPU backend: runs a bundle's own MIL programs and weight.bin files through the native
 * library. Each function is compiled into an execution plan per call length on first use, so a
 * decode step with one real token computes one position instead of L.
 *
 * @module
 */

import type { FunctionSpec, PieceSpec } from "../../bundle/manifest.ts";
import { readPiecePackage } from "../../bundle/piece_package.ts";
import type { MilFunction } from "../../coreml/mil.ts";
import { kernelSet, NativeWeights, openLibrary } from "../../ffi/cpu.ts";
import { planFunction } from "./cpu/plan.ts";
import type { Backend, IoArray, LoadedFunction } from "./backend.ts";
import type { NativePlan } from "../../ffi/cpu.ts";

class CpuFunction implements LoadedFunction {
  readonly #spec: FunctionSpec;
  readonly #program: MilFunction;
  readonly #weights: NativeWeights;
  readonly #plans = new Map<number, NativePlan>();
  #disposed = false;

  constructor(spec: FunctionSpec, program: MilFunction, weights: NativeWeights) {
    this.#spec = spec;
    this.#program = program;
    this.#weights = weights;
  }

  #plan(callLength: number): NativePlan {
    let plan = this.#plans.get(callLength);
    if (plan === undefined) {
      const outputs = this.#spec.outputs.map((o) => o.name);
      const compiled = planFunction(this.#program, this.#spec.callLength, callLength, outputs);
      plan = this.#weights.plan(JSON.stringify(compiled));
      this.#plans.set(callLength, plan);
    }
    return plan;
  }

  async run(
    callLength: number,
    inputs: ReadonlyMap<string, IoArray>,
    outputs: ReadonlyMap<string, IoArray>,
  ): Promise<void> {
    if (this.#disposed) {
      throw new Deno.errors.BadResource(
        `Cannot run function "${this.#spec.name}": the model has been disposed`,
      );
    }
    const ordered = (specs: FunctionSpec["inputs"], values: ReadonlyMap<string, IoArray>) =>
      specs.map((io) =>
        values.get(io.name) ?? (() => {
          throw new RangeError(
            `Cannot run function "${this.#spec.name}": no buffer for "${io.name}"`,
          );
        })()
      );
    await this.#plan(callLength).run(
      ordered(this.#spec.inputs, inputs),
      ordered(this.#spec.outputs, outputs),
    );
  }

  /** Frees each plan once its queued runs have finished, and the weights when no plan needs them. */
  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const plan of this.#plans.values()) plan[Symbol.dispose]();
    this.#plans.clear();
    this.#weights[Symbol.dispose]();
  }
}

/** Options of {@link CpuBackend.create}. */
export interface CpuBackendOptions {
  /** Path of the native library. @default found as `findLibrary` says */
  readonly library?: string;
}

/** Runs bundles on the CPU through the native library. */
export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly flexibleCallLength = true;
  /**
   * The native kernel set (`avx512`, `avxvnni`, `avx2`, `i8mm`, `dotprod`, `neon`, `scalar`); undefined for an
   * older library.
   */
  readonly kernels: string | undefined;
  readonly #library: Awaited<ReturnType<typeof openLibrary>>;

  private constructor(library: Awaited<ReturnType<typeof openLibrary>>) {
    this.#library = library;
    this.kernels = kernelSet(library);
  }

  /**
   * Finds and opens the native library (needs `--allow-ffi` for its path). Fails when
   * `LLAMANE_CPU_KERNELS` names a kernel set this CPU cannot run.
   */
  static async create(options: CpuBackendOptions = {}): Promise<CpuBackend> {
    return new CpuBackend(await openLibrary(options.library));
  }

  load(bundleDir: string, piece: PieceSpec, fn: FunctionSpec): Promise<LoadedFunction> {
    const contents = readPiecePackage(bundleDir, piece);
    const program = contents.model.program.functions.get(fn.name);
    if (program === undefined || contents.weightsPath === undefined) {
      throw new RangeError(
        `Cannot load piece "${piece.name}": its package has no function "${fn.name}" or no weights`,
      );
    }
    return Promise.resolve(
      new CpuFunction(fn, program, NativeWeights.open(this.#library, contents.weightsPath)),
    );
  }

  /** The library stays loaded for the process; nothing to release here. */
  [Symbol.dispose](): void {}
}
