/**
 * `llamane inspect --compute-plan`: where Core ML plans to run each operation of each piece
 * function (Neural Engine, GPU or CPU), from Core ML's own compute plan (macOS 14.4+), and which
 * operations fall off the Neural Engine.
 *
 * @module
 */

import { computePlanText, type ComputeUnits, openLibrary } from "../../ffi/coreml.ts";
import { compiledModelPath, defaultCacheDir, prepareCacheDir } from "./coreml_cache.ts";
import { readNeed, requirePermissions } from "../../permissions.ts";
import { readManifest } from "../../bundle/manifest.ts";

/** A compute device as the bridge names it; `none` when Core ML dispatches nothing (constants). */
export type Device = "ane" | "gpu" | "cpu" | "other" | "none";

/** Where Core ML plans one operation. */
export interface OperationPlacement {
  /** The MIL operator, e.g. `linear`. */
  readonly operator: string;
  readonly device: Device;
  /** Core ML's estimated share of the function's work, in [0, 1], when it gives one. */
  readonly cost: number | null;
  /** Names of the operation's outputs. */
  readonly outputs: readonly string[];
}

/** The plan of one function of one piece. */
export interface FunctionComputePlan {
  readonly piece: string;
  readonly package: string;
  readonly function: string;
  /** Operations per device, `none` included. */
  readonly counts: Readonly<Record<Device, number>>;
  /** Summed estimated cost per device (operations without an estimate add nothing). */
  readonly cost: Readonly<Record<Device, number>>;
  /** Dispatched operations that do not run on the Neural Engine, in program order. */
  readonly offNeuralEngine: readonly OperationPlacement[];
}

/** The whole report. */
export interface ComputePlanReport {
  readonly bundle: string;
  readonly computeUnits: ComputeUnits;
  readonly functions: readonly FunctionComputePlan[];
}

/** A line of the bridge's compute plan text that does not have its four fields. */
export class ComputePlanFormatError extends SyntaxError {
  constructor(line: number, text: string) {
    super(
      `Cannot read the compute plan: line ${line} "${text}" does not have 4 tab-separated fields`,
    );
    this.name = "ComputePlanFormatError";
  }
}

const DEVICES: readonly Device[] = ["ane", "gpu", "cpu", "other", "none"];

/** Parses the bridge's compute plan text (ffi/coreml/ABI.md, "Compute plan"). */
export function parseComputePlan(text: string): OperationPlacement[] {
  return text.split("\n").filter((line) => line !== "").map((line, i) => {
    const fields = line.split("\t");
    if (fields.length !== 4) throw new ComputePlanFormatError(i + 1, line);
    const [operator, device, cost, outputs] = fields as [string, string, string, string];
    return {
      operator,
      device: device === "" ? "none" : DEVICES.find((d) => d === device) ?? "other",
      cost: cost === "" || !Number.isFinite(Number(cost)) ? null : Number(cost),
      outputs: outputs === "" ? [] : outputs.split(","),
    };
  });
}

/** Counts and costs per device, and the operations off the Neural Engine. */
export function summarizePlacements(
  placements: readonly OperationPlacement[],
): Pick<FunctionComputePlan, "counts" | "cost" | "offNeuralEngine"> {
  const counts = Object.fromEntries(DEVICES.map((d) => [d, 0])) as Record<Device, number>;
  const cost = Object.fromEntries(DEVICES.map((d) => [d, 0])) as Record<Device, number>;
  for (const op of placements) {
    counts[op.device]++;
    cost[op.device] += op.cost ?? 0;
  }
  const offNeuralEngine = placements.filter((op) => op.device !== "ane" && op.device !== "none");
  return { counts, cost, offNeuralEngine };
}

/** Options of {@link computePlanReport}. */
export interface ComputePlanOptions {
  /** Compute units to plan for. @default "cpuAndNeuralEngine" */
  readonly computeUnits?: ComputeUnits;
  /** Path of the Core ML bridge. @default found as ffi/coreml.ts says (macOS only) */
  readonly library?: string;
  /** Where compiled models are cached. @default as runtime/backend/coreml_cache.ts says */
  readonly cacheDir?: string;
  /** Longest wait for each compile or plan load, in seconds. @default 600 */
  readonly timeoutSeconds?: number;
}

/** A compute plan that places no operation of a function on any device. */
export class ComputePlanCoverageError extends Error {
  constructor(piece: string, fn: string) {
    super(
      `Core ML's compute plan of function "${fn}" of piece "${piece}" places none of its ` +
        "operations on a device: the plan does not cover that function (MLComputePlan may " +
        "describe only a package's default function on this system), so no placement can be " +
        "reported for it",
    );
    this.name = "ComputePlanCoverageError";
  }
}

/**
 * Refuses a plan in which no operation but constants has a device: Core ML dispatches every other
 * operation somewhere, so such a plan does not describe the function asked for.
 */
export function requireCoverage(
  placements: readonly OperationPlacement[],
  piece: string,
  fn: string,
): void {
  const dispatched = placements.filter((op) => op.operator !== "const");
  if (dispatched.length > 0 && dispatched.every((op) => op.device === "none")) {
    throw new ComputePlanCoverageError(piece, fn);
  }
}

/**
 * Asks Core ML for the compute plan of every function of every piece of `bundle`. Needs read
 * permission for the bundle, write permission for the cache directory and ffi permission for the
 * bridge; compiles each package into the cache on first use, as running does.
 */
export async function computePlanReport(
  bundle: string,
  options: ComputePlanOptions = {},
): Promise<ComputePlanReport> {
  await requirePermissions([readNeed(bundle, "read the bundle")]);
  const manifest = await readManifest(bundle);
  const library = await openLibrary(options.library);
  const cacheDir = options.cacheDir ?? await defaultCacheDir();
  await prepareCacheDir(cacheDir);
  const computeUnits = options.computeUnits ?? "cpuAndNeuralEngine";
  const functions: FunctionComputePlan[] = [];
  for (const piece of manifest.pieces) {
    const packagePath = `${bundle}/${piece.package}`;
    const compiledPath = await compiledModelPath(packagePath, cacheDir);
    for (const fn of piece.functions) {
      const text = await computePlanText(library, {
        packagePath,
        compiledPath,
        functionName: piece.functions.length > 1 ? fn.name : "",
        computeUnits,
        ...(options.timeoutSeconds === undefined ? {} : { timeoutSeconds: options.timeoutSeconds }),
      });
      const placements = parseComputePlan(text);
      requireCoverage(placements, piece.name, fn.name);
      functions.push({
        piece: piece.name,
        package: piece.package,
        function: fn.name,
        ...summarizePlacements(placements),
      });
    }
  }
  return { bundle, computeUnits, functions };
}
