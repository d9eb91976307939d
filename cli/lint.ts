/**
 * `llamane lint`: checks a bundle's programs against the Neural Engine's reported limits.
 *
 * @module
 */

import { type FlagTable, parseFlags, usage, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { formatBytes } from "./format.ts";
import { lintBundle, type LintFinding, type LintReport } from "../bundle/lint.ts";

const flags = {
  json: { type: "boolean", help: "print the report as JSON" },
} as const satisfies FlagTable;

/** The findings as lines, each with its source and fix, for the end of an export too. */
export function formatFindings(findings: readonly LintFinding[]): string[] {
  return findings.flatMap((f) => [
    `${f.severity} ${f.piece}: ${f.message}`,
    `  source: ${f.source}`,
    `  fix: ${f.fix}`,
  ]);
}

function formatReport(report: LintReport): string {
  const lines = [`lint ${report.bundle}`];
  for (const p of report.programs) {
    lines.push(
      `  ${p.piece.padEnd(10)} ${formatBytes(p.weightBytes).padStart(10)}  ${
        String(p.layers).padStart(2)
      } layers  ${
        String(p.ops).padStart(5)
      } ops  largest axis ${p.largestAxis}, rank ${p.largestRank}` +
        (p.lookupTableAxis > 0 ? `, lookup table ${p.lookupTableAxis}` : "") +
        `  I/O ${formatBytes(p.inputBytes)} in, ${formatBytes(p.outputBytes)} out`,
    );
  }
  const errors = report.findings.filter((f) => f.severity === "error").length;
  lines.push(...formatFindings(report.findings));
  lines.push(`${errors} errors, ${report.findings.length - errors} warnings`);
  return lines.join("\n");
}

/** `llamane lint BUNDLE [--json]` */
export const lintCommand: Command = {
  summary: "check a bundle's programs against the Neural Engine's reported limits",
  usage: usage({
    command: "lint",
    synopsis: ["BUNDLE [--json]"],
    description:
      "Reports, per program, its weight bytes, layers, ops, largest axis and rank, I/O sizes and fp32 compute in fp16 bundles, and each reported Neural Engine limit it breaks with the source of the number and the export flag that fixes it. Exits with status 1 when there is an error. Without a Mac this is what can be known; on macOS `inspect --compute_plan` is the ground truth.",
    flags,
  }),

  async main(argv) {
    const { values, positionals } = parseFlags(argv, flags, true);
    if (positionals.length !== 1) throw new UsageError("Expected one BUNDLE path");
    const report = await lintBundle(positionals[0]!);
    console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
    if (report.findings.some((f) => f.severity === "error")) Deno.exitCode = 1;
  },
};
