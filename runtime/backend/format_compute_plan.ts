/**
 * The text `llamane inspect --compute-plan` prints for a {@link ComputePlanReport}: per piece
 * function, how many operations Core ML plans on the Neural Engine, GPU and CPU, their estimated
 * cost shares, and the operations that fall off the Neural Engine, grouped by device and operator.
 *
 * @module
 */

import type { ComputePlanReport, Device, FunctionComputePlan } from "./compute_plan.ts";

const LABELS: Readonly<Record<Exclude<Device, "none">, string>> = {
  ane: "Neural Engine",
  gpu: "GPU",
  cpu: "CPU",
  other: "other",
};

/** Output names listed per group of off-Neural-Engine operations before "and N more". */
const NAMES_SHOWN = 3;

function percent(part: number, whole: number): string {
  return whole === 0 ? "0%" : `${((100 * part) / whole).toFixed(1)}%`;
}

function formatFunction(plan: FunctionComputePlan): string[] {
  const { counts, cost } = plan;
  const dispatched = counts.ane + counts.gpu + counts.cpu + counts.other;
  const devices = (Object.keys(LABELS) as (keyof typeof LABELS)[]).filter((d) =>
    d !== "other" || counts.other > 0
  );
  const lines = [
    `${plan.package}  function ${plan.function}`,
    `  ops    ${dispatched} dispatched: ${
      devices.map((d) => `${LABELS[d]} ${counts[d]} (${percent(counts[d], dispatched)})`).join(", ")
    }; ${counts.none} not dispatched (constants)`,
  ];
  const totalCost = devices.reduce((sum, d) => sum + cost[d], 0);
  if (totalCost > 0) {
    lines.push(
      `  cost   ${devices.map((d) => `${LABELS[d]} ${percent(cost[d], totalCost)}`).join(", ")}` +
        " (Core ML's estimates)",
    );
  }
  if (plan.offNeuralEngine.length === 0) {
    lines.push(
      dispatched === 0
        ? "  Core ML reported no device for any operation"
        : "  every dispatched operation runs on the Neural Engine",
    );
    return lines;
  }
  lines.push(`  off the Neural Engine (${plan.offNeuralEngine.length}):`);
  const groups = new Map<string, string[]>();
  for (const op of plan.offNeuralEngine) {
    const key = `${op.device}\t${op.operator}`;
    groups.set(key, [...groups.get(key) ?? [], op.outputs.join(", ") || "(unnamed)"]);
  }
  for (const [key, names] of groups) {
    const [device, operator] = key.split("\t") as [keyof typeof LABELS, string];
    const shown = names.slice(0, NAMES_SHOWN).join("; ");
    const more = names.length > NAMES_SHOWN ? ` and ${names.length - NAMES_SHOWN} more` : "";
    lines.push(`    ${LABELS[device].padEnd(13)} ${operator} x${names.length}: ${shown}${more}`);
  }
  return lines;
}

/** Formats a compute plan report as lines of text (no trailing newline). */
export function formatComputePlan(report: ComputePlanReport): string {
  const header = `Core ML compute plan of ${report.bundle} (compute units ${report.computeUnits})`;
  return [header, ...report.functions.flatMap((fn) => ["", ...formatFunction(fn)])].join("\n");
}
