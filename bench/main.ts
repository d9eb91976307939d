/**
 * `deno task bench [name...]`: runs the benchmarks and writes their figures to
 * `bench/results.json`, merged with earlier runs of benchmarks not selected this time.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { checkpointLoad } from "./checkpoint_load.ts";
import { cpuPrefill } from "./cpu_prefill.ts";
import { exportChunksBench } from "./export_chunks.ts";
import { exportModelBench } from "./export_model.ts";
import { exportLayoutsBench } from "./export_layouts.ts";
import { llamaCpp } from "./llama_cpp.ts";
import { lookahead } from "./lookahead.ts";
import { describeMachine, type Machine } from "./machine.ts";
import { multifunction } from "./multifunction.ts";
import { quality } from "./quality.ts";
import { qualitySmollm2, qualitySmollm2Prose } from "./quality_smollm2.ts";
import { runCpu } from "./run_cpu.ts";
import { serveLoad } from "./serve_load.ts";
import { tokenizerEncode } from "./tokenizer_encode.ts";

const benches: readonly Bench[] = [
  checkpointLoad,
  cpuPrefill,
  exportModelBench,
  exportLayoutsBench,
  exportChunksBench,
  llamaCpp,
  lookahead,
  multifunction,
  quality,
  qualitySmollm2,
  qualitySmollm2Prose,
  runCpu,
  serveLoad,
  tokenizerEncode,
];

const resultsPath = new URL("./results.json", import.meta.url);

interface Result extends Machine {
  readonly description: string;
  readonly date: string;
  readonly figures: Figures;
}

async function readResults(): Promise<Record<string, Result>> {
  try {
    return JSON.parse(await Deno.readTextFile(resultsPath));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
}

if (import.meta.main) {
  const selected = Deno.args.length === 0
    ? benches
    : benches.filter((b) => Deno.args.includes(b.name));
  const results = await readResults();
  const machine = await describeMachine();
  for (const bench of selected) {
    console.log(`bench ${bench.name}: ${bench.description}`);
    const figures = await bench.run();
    console.log(figures);
    results[bench.name] = {
      description: bench.description,
      date: new Date().toISOString(),
      ...machine,
      figures,
    };
    await Deno.writeTextFile(resultsPath, JSON.stringify(results, null, 2) + "\n");
  }
  console.log(`wrote ${resultsPath.pathname}`);
}
