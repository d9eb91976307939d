/**
 * What a bundle holds: its pieces, their functions, op counts and weight bytes by type.
 *
 *   deno run --allow-read inspect.ts BUNDLE
 */

import { inspectBundle } from "@llamane/llamane/bundle";

const bundle = Deno.args[0];
if (bundle === undefined) throw new Error("Usage: inspect.ts BUNDLE");

// Reads the manifest and every .mlpackage's program and weight file; nothing is loaded to run.
const report = await inspectBundle(bundle);
for (const piece of report.pieces) {
  const weights = Object.entries(piece.weightBytesByDType)
    .map(([dtype, bytes]) => `${dtype} ${bytes} B`).join(", ");
  console.log(`${piece.package}: ${weights}`);
  for (const fn of piece.functions) {
    // The most frequent ops first; `const` holds the weights and small tables.
    const ops = Object.entries(fn.ops).sort((a, b) => b[1] - a[1]).slice(0, 5);
    console.log(`  ${fn.name}: ${ops.map(([op, n]) => `${op} x${n}`).join(", ")}`);
  }
}
