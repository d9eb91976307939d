/**
 * `llamane lint`: what can be known without a Mac about whether each program of a bundle fits the
 * Neural Engine, checked against the reported limits of ane_limits.ts. Each finding names the
 * limit it breaks, where the number comes from, and the export flag that fixes it. On a Mac,
 * `llamane inspect --compute_plan` remains the ground truth.
 *
 * @module
 */

import { ANE_LIMITS, type AneLimit } from "./ane_limits.ts";
import { readCheckedPackages } from "./check_programs.ts";
import { type BundleManifest, readManifest } from "./manifest.ts";
import type { MilFunction, Operation } from "../coreml/mil.ts";
import { DTYPE_INFO } from "../coreml/dtype.ts";
import { elementCount } from "../shape.ts";
import { readNeed, requirePermissions } from "../permissions.ts";

/** What one program holds, as far as the limits are concerned. */
export interface ProgramFacts {
  /** The piece, as the manifest names it. */
  readonly piece: string;
  /** Bytes of its weight file's data. */
  readonly weightBytes: number;
  /** Transformer layers (key caches among its inputs). */
  readonly layers: number;
  /** Operations of its largest function, `const` excluded. */
  readonly ops: number;
  /** The largest axis of any input, output or operation result but a lookup table's. */
  readonly largestAxis: number;
  /**
   * The largest axis of the constant tables only gathers read (the embedding's), 0 when there is
   * none: a lookup is reported to run on the CPU, so a wide table does not meet the Neural
   * Engine's axis limit there (docs/coreml.md, "Neural Engine limits").
   */
  readonly lookupTableAxis: number;
  /** The highest rank of any of them. */
  readonly largestRank: number;
  /** Non-constant operations computing in fp32 although the bundle is fp16. */
  readonly fp32Ops: number;
  /** Bytes of the inputs and of the outputs of its largest function. */
  readonly inputBytes: number;
  readonly outputBytes: number;
}

/** One limit a program breaks, or comes close to. */
export interface LintFinding {
  /** `error`: breaks a reported limit; `warning`: past a margin, or likely to leave the ANE. */
  readonly severity: "error" | "warning";
  readonly piece: string;
  /** What was found, with the limit. */
  readonly message: string;
  /** Where the limit's number comes from. */
  readonly source: string;
  /** The export flag that fixes it. */
  readonly fix: string;
}

/** The whole report. */
export interface LintReport {
  readonly bundle: string;
  readonly programs: readonly ProgramFacts[];
  readonly findings: readonly LintFinding[];
}

function tensorBytes(type: { dtype: keyof typeof DTYPE_INFO; shape: readonly number[] }): number {
  return Math.ceil(elementCount(type.shape) * DTYPE_INFO[type.dtype].bits / 8);
}

const isConstant = (op: Operation) => op.type === "const" || op.type.startsWith("constexpr_");

/**
 * Names of the constants (outputs of `const` and `constexpr_*` operations) read only as the table
 * of a `gather`, directly or through other such constants: an embedding table and its quantized
 * parts.
 */
function lookupTables(fn: MilFunction): Set<string> {
  const uses = new Map<string, { op: Operation; parameter: string }[]>();
  for (const op of fn.block.operations) {
    for (const [parameter, bindings] of op.inputs) {
      for (const binding of bindings) {
        if (typeof binding === "string") {
          uses.set(binding, [...uses.get(binding) ?? [], { op, parameter }]);
        }
      }
    }
  }
  const tables = new Set<string>();
  // Consumers come after what they read, so walking backwards settles them first.
  for (const op of [...fn.block.operations].reverse().filter(isConstant)) {
    for (const { name } of op.outputs) {
      const readers = uses.get(name) ?? [];
      const onlyLookups = readers.length > 0 && !fn.block.outputs.includes(name) &&
        readers.every(({ op: reader, parameter }) =>
          (reader.type === "gather" && parameter === "x") ||
          (isConstant(reader) && reader.outputs.every((o) => tables.has(o.name)))
        );
      if (onlyLookups) tables.add(name);
    }
  }
  return tables;
}

/** The facts of one function; a program's are the largest over its functions. */
function functionFacts(fn: MilFunction, fp16: boolean) {
  const tables = lookupTables(fn);
  const results = fn.block.operations.flatMap((op) => op.outputs);
  const types = [
    ...fn.inputs.map((v) => v.type),
    ...results.filter((o) => !tables.has(o.name)).map((o) => o.type),
  ];
  const tableAxes = results.filter((o) => tables.has(o.name)).flatMap((o) => o.type.shape);
  const computing = fn.block.operations.filter((op) => op.type !== "const");
  const outputs = new Map(
    fn.block.operations.flatMap((op) => op.outputs.map((o) => [o.name, o.type] as const)),
  );
  return {
    layers: fn.inputs.filter((v) => v.name.startsWith("k_cache_")).length,
    ops: computing.length,
    largestAxis: Math.max(0, ...types.flatMap((t) => t.shape)),
    lookupTableAxis: Math.max(0, ...tableAxes),
    largestRank: Math.max(0, ...types.map((t) => t.shape.length)),
    fp32Ops: fp16
      ? computing.filter((op) => op.outputs.some((o) => o.type.dtype === "fp32")).length
      : 0,
    inputBytes: fn.inputs.reduce((sum, v) => sum + tensorBytes(v.type), 0),
    outputBytes: fn.block.outputs.reduce((sum, name) => {
      const type = outputs.get(name) ?? fn.inputs.find((v) => v.name === name)?.type;
      return sum + (type === undefined ? 0 : tensorBytes(type));
    }, 0),
  };
}

/** Reads the facts of every program of a bundle. */
export function programFacts(bundle: string, manifest: BundleManifest): ProgramFacts[] {
  const packages = readCheckedPackages(bundle, manifest);
  const fp16 = manifest.export.dtype === "fp16";
  return manifest.pieces.map((piece, index) => {
    const functions = [...packages[index]!.model.program.functions.values()].map((fn) =>
      functionFacts(fn, fp16)
    );
    const most = (key: keyof ReturnType<typeof functionFacts>) =>
      Math.max(...functions.map((f) => f[key]));
    return {
      piece: piece.name,
      weightBytes: piece.weightBytes,
      layers: most("layers"),
      ops: most("ops"),
      largestAxis: most("largestAxis"),
      lookupTableAxis: most("lookupTableAxis"),
      largestRank: most("largestRank"),
      fp32Ops: most("fp32Ops"),
      inputBytes: most("inputBytes"),
      outputBytes: most("outputBytes"),
    };
  });
}

const GB = 1e9;

/** Why a wide embedding table is not held to the axis limit. */
const LOOKUP_ON_CPU: AneLimit = {
  value: ANE_LIMITS.tensorAxis.value,
  source: "compute plans place embedding gathers on the CPU, and ANE-focused converters keep the " +
    "embedding in a program of its own (public reports; not measured by llamane)",
};

/** The findings for one program's facts. */
export function lintProgram(facts: ProgramFacts): LintFinding[] {
  const findings: LintFinding[] = [];
  const add = (
    severity: LintFinding["severity"],
    message: string,
    limit: AneLimit,
    fix: string,
  ) => findings.push({ severity, piece: facts.piece, message, source: limit.source, fix });
  const chunkFix = "export --num_chunks N (or --max_chunk_gb / --max_chunk_layers)";
  const weights = facts.weightBytes;
  if (weights > ANE_LIMITS.programWeightBytes.value) {
    add(
      "error",
      `${(weights / GB).toFixed(2)} GB of weights, above the ${
        ANE_LIMITS.programWeightBytes.value / GB
      } GB one program is reported to compile with`,
      ANE_LIMITS.programWeightBytes,
      `${chunkFix}, or stronger --linear_quantize`,
    );
  } else if (weights > ANE_LIMITS.chunkWeightBytes.value) {
    add(
      "warning",
      `${(weights / GB).toFixed(2)} GB of weights, above the ${
        ANE_LIMITS.chunkWeightBytes.value / GB
      } GB margin exports keep`,
      ANE_LIMITS.chunkWeightBytes,
      chunkFix,
    );
  }
  if (facts.layers >= ANE_LIMITS.failingProgramLayers.value) {
    add(
      "error",
      `${facts.layers} layers in one program; programs of ${ANE_LIMITS.failingProgramLayers.value} ` +
        "or more are reported to fail at execution",
      ANE_LIMITS.failingProgramLayers,
      chunkFix,
    );
  } else if (facts.layers > ANE_LIMITS.programLayers.value) {
    add(
      "warning",
      `${facts.layers} layers in one program, more than the ${ANE_LIMITS.programLayers.value} ` +
        "known to run",
      ANE_LIMITS.programLayers,
      chunkFix,
    );
  }
  if (facts.largestAxis > ANE_LIMITS.tensorAxis.value) {
    add(
      "error",
      `an axis of ${facts.largestAxis}, above the ${ANE_LIMITS.tensorAxis.value} allowed`,
      ANE_LIMITS.tensorAxis,
      "a head wider than 65,536 is emitted as logits parts: lower export --target_split_size " +
        "(or raise --max_splits) so that each part fits",
    );
  }
  // Alone in its piece, a lookup that runs on the CPU costs the layers nothing; in their program
  // it cuts them off the Neural Engine at its start.
  if (facts.lookupTableAxis > ANE_LIMITS.tensorAxis.value && facts.layers > 0) {
    add(
      "warning",
      `an embedding table of ${facts.lookupTableAxis} rows in the program of the layers; its ` +
        `lookup runs on the CPU, whose axes have no ${ANE_LIMITS.tensorAxis.value} limit`,
      LOOKUP_ON_CPU,
      "export without --no_graph_breaks, so that the lookup is a piece of its own",
    );
  }
  if (facts.largestRank > ANE_LIMITS.tensorRank.value) {
    add(
      "warning",
      `a rank-${facts.largestRank} tensor, above rank ${ANE_LIMITS.tensorRank.value}`,
      ANE_LIMITS.tensorRank,
      "none: llamane's graphs stay at rank 4; this bundle was not written by this version",
    );
  }
  if (facts.fp32Ops > 0) {
    add(
      "warning",
      `${facts.fp32Ops} operations compute in fp32 in an fp16 bundle; the Neural Engine computes ` +
        "in fp16, so they run elsewhere",
      { value: 0, source: "the Neural Engine computes in fp16 only" },
      "export --dtype fp16 (the default)",
    );
  }
  return findings;
}

/** Lints every program of a bundle. Needs read permission for it. */
export async function lintBundle(bundle: string): Promise<LintReport> {
  await requirePermissions([readNeed(bundle, "read the bundle")]);
  const manifest = await readManifest(bundle);
  const programs = programFacts(bundle, manifest);
  return { bundle, programs, findings: programs.flatMap(lintProgram) };
}
