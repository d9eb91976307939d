/**
 * `llamane inspect`: what a bundle holds.
 *
 * @module
 */

import { type FlagTable, parseFlags, usage, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { formatBytes } from "./format.ts";
import { inspectBundle } from "../bundle/inspect.ts";
import type { IoSpec } from "../bundle/manifest.ts";
import { computePlanReport } from "../runtime/backend/compute_plan.ts";
import { formatComputePlan } from "../runtime/backend/format_compute_plan.ts";
import { BACKEND_DEFAULTS, parseComputeUnits } from "../runtime/backend/select.ts";
import { COMPUTE_UNITS_CODES } from "../ffi/coreml.ts";

const flags = {
  compute_plan: {
    type: "boolean",
    help: "instead, ask Core ML (macOS 14.4+) where each op of each function runs: counts per " +
      "device (Neural Engine, GPU, CPU) and the ops that fall off the Neural Engine",
  },
  compute_units: {
    type: "string",
    value: "U",
    help: `for --compute_plan: ${Object.keys(COMPUTE_UNITS_CODES).join(", ")}`,
    default: BACKEND_DEFAULTS.computeUnits,
  },
} as const satisfies FlagTable;

function formatIo(io: IoSpec): string {
  return `${io.name} ${io.dtype}[${io.shape.join(", ")}]`;
}

/** `llamane inspect BUNDLE` */
export const inspectCommand: Command = {
  summary: "print a bundle's pieces, functions, inputs, outputs, ops and weight sizes",
  usage: usage({
    command: "inspect",
    synopsis: ["BUNDLE [flags]"],
    description:
      "Prints the export settings, then for every piece its functions with their inputs and outputs (dtype and shape), op counts, and weight bytes by storage type.",
    flags,
  }),

  async main(argv) {
    const { values, positionals } = parseFlags(argv, flags, true);
    if (positionals.length !== 1) throw new UsageError("Expected one BUNDLE path");
    if (values.compute_plan) {
      const computeUnits = parseComputeUnits(values.compute_units);
      console.log(formatComputePlan(await computePlanReport(positionals[0]!, { computeUnits })));
      return;
    }
    const report = await inspectBundle(positionals[0]!);
    const { model, export: e, tokenizer, writer } = report.manifest;
    console.log(`bundle     ${positionals[0]} (written by ${writer})`);
    console.log(
      `model      dim ${model.dim}, ${model.nLayers} layers, ${model.nHeads} heads (${model.nKvHeads} kv), ` +
        `vocab ${model.vocabSize}${model.tiedOutput ? ", tied output" : ""}`,
    );
    console.log(
      `export     ${e.dtype}, linear ${e.linearQuantize}, embedding and head ${e.embeddingQuantize}, ` +
        `input_len ${e.inputLen}, cache ${e.cacheLen}, ${
          e.graphBreaks ? "graph breaks" : "one program"
        }` +
        `${e.multifunction ? ", multifunction" : ""}`,
    );
    console.log(
      `tokenizer  ${tokenizer === null ? "none" : `${tokenizer.kind} (${tokenizer.file})`}`,
    );
    for (const piece of report.pieces) {
      const weights = Object.entries(piece.weightBytesByDType).map(([dtype, bytes]) =>
        `${dtype} ${formatBytes(bytes)}`
      );
      console.log(
        `\n${piece.package}  weights: ${weights.join(", ") || "none"}` +
          (piece.sharedWeightBytes > 0
            ? ` (${formatBytes(piece.sharedWeightBytes)} shared by functions)`
            : ""),
      );
      for (const fn of piece.functions) {
        console.log(`  function ${fn.name}`);
        for (const io of fn.inputs) console.log(`    in   ${formatIo(io)}`);
        for (const io of fn.outputs) console.log(`    out  ${formatIo(io)}`);
        const ops = Object.entries(fn.ops).sort(([, a], [, b]) => b - a).map(([op, n]) =>
          `${op} ${n}`
        );
        console.log(`    ops  ${ops.join(", ")}`);
      }
    }
  },
};
