/**
 * Benchmark: `llamane serve` on SmolLM2-135M-Instruct (fp16, c4w: the export defaults) under the
 * load test's load (testing/serve_load.ts): 8 clients of 20 requests each, chat and text, streamed
 * and whole, some cancelled midway, on loopback, against the default queue of 8 (so none is
 * refused). It records the time to first token of the streamed answers (p50, p99; waiting for the
 * model included, as a client sees it), the generated tokens per second of the whole run, how the
 * requests ended, and the server's resident memory and live JavaScript heap after a full garbage
 * collection before the run (after one request of each endpoint, which brings the weights in) and
 * after it.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { exportModel } from "../export/export_model.ts";
import { oracleTokenizerDir } from "../testing/hf_oracle.ts";
import { alone, type LoadPlan, planRequests, runLoad, sendRequest } from "../testing/serve_load.ts";
import { startServeProcess } from "../testing/serve_process.ts";
import { LoadSampler, percentile, round } from "./spread.ts";

const ROOT = new URL("../", import.meta.url);
const SMOLLM2 = new URL("testdata/smollm2/hf", ROOT).pathname;
const MAX_TOKENS = 32;

/** SmolLM2's fixtures (scripts/fixtures/smollm2/make.sh, which skips a complete folder). */
async function ensureSmollm2(): Promise<void> {
  const script = new URL("scripts/fixtures/smollm2/make.sh", ROOT).pathname;
  const { success } = await new Deno.Command("bash", {
    args: [script],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`Cannot make the SmolLM2 fixtures: ${script} failed`);
}

/** SmolLM2 exported with the defaults and its tokenizer.json and chat template, in `dir`. */
async function exportSmollm2(dir: string): Promise<string> {
  await ensureSmollm2();
  const bundle = `${dir}/smollm2.llamane`;
  await exportModel({
    checkpoint: SMOLLM2,
    tokenizer: `${await oracleTokenizerDir("smollm2")}/tokenizer.json`,
    output: bundle,
  });
  return bundle;
}

const MB = 1024 * 1024;

/** `serve_load` */
export const serveLoad: Bench = {
  name: "serve_load",
  description: "llamane serve on SmolLM2-135M-Instruct (fp16 c4w, CPU backend) under 8 " +
    `concurrent clients of 20 requests each (max_tokens ${MAX_TOKENS}, greedy; chat and text, ` +
    "streamed and whole, a quarter cancelled midway; loopback; queue of 8): time to first token " +
    "of the streamed answers as clients see it (p50, p99, queueing included), generated tokens " +
    "per second over the run, outcomes, and the server's resident memory and live JavaScript " +
    "heap after a full garbage collection before and after the run",
  async run() {
    const dir = await Deno.makeTempDir({ prefix: "llamane-bench-serve-" });
    try {
      const bundle = await exportSmollm2(dir);
      await using server = await startServeProcess(bundle);
      const load = new LoadSampler();
      const plan: LoadPlan = {
        clients: 8,
        requestsPerClient: 20,
        maxTokens: MAX_TOKENS,
        model: "smollm2.llamane",
      };
      // One request of each endpoint first, alone: the weights are mapped from the bundle and
      // resident only once read, which is no growth of the server's own.
      const [first] = planRequests(plan);
      for (const request of first!.filter((r) => r.index < 2)) {
        await sendRequest(server.url, alone(request));
      }
      await load.sample();
      const before = await server.memory();
      const started = performance.now();
      const results = await runLoad(server.url, plan);
      const seconds = (performance.now() - started) / 1000;
      await load.sample();
      const after = await server.memory();

      const counts: Record<string, number> = {};
      const firstText: number[] = [];
      let tokens = 0;
      for (const { outcome } of results) {
        counts[outcome.kind] = (counts[outcome.kind] ?? 0) + 1;
        if (outcome.kind !== "completed") continue;
        tokens += outcome.completionTokens;
        if (outcome.firstTextMs !== undefined) firstText.push(outcome.firstTextMs);
      }
      const figures: Figures = {
        requests: results.length,
        completed: counts.completed ?? 0,
        cancelled: counts.cancelled ?? 0,
        rate_limited: counts.rate_limited ?? 0,
        failed_or_lost: (counts.failed ?? 0) + (counts.lost ?? 0),
        wall_s: round(seconds, 1),
        generated_tokens: tokens,
        throughput_tok_s: round(tokens / seconds, 1),
        ttft_streamed_answers: firstText.length,
        ttft_p50_ms: round(percentile(firstText, 50)),
        ttft_p99_ms: round(percentile(firstText, 99)),
        rss_before_mb: round(before.resident / MB, 1),
        rss_after_mb: round(after.resident / MB, 1),
        heap_used_before_mb: round(before.heapUsed / MB, 1),
        heap_used_after_mb: round(after.heapUsed / MB, 1),
        ...load.figures("serve"),
      };
      return figures;
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
};
