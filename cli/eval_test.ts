/**
 * `llamane eval` as users run it, against the PyTorch perplexity of the same checkpoint and text
 * with the same window (testdata/perplexity/kjv.json, made by scripts/oracle/make_perplexity.py).
 */

import assert from "node:assert/strict";
import { exportModel } from "../export/export_model.ts";
import type { ExportOptions } from "../export/options.ts";
import { loadTokenizer } from "../tokenizer/load.ts";
import { llamane } from "./_testing.ts";

const ROOT = new URL("../", import.meta.url);
const LIBRARY_DIR = new URL("ffi/cpu/target/release", ROOT).pathname;

interface PerplexityFixture {
  checkpoint: string;
  params: string;
  text: string;
  max_tokens: number;
  call_length: number;
  cache_length: number;
  tokens: number[];
  perplexity: number;
  perplexity_without_window: number;
  trained_context: number;
  perplexity_with_sinks: number;
}

const fixture: PerplexityFixture = JSON.parse(
  await Deno.readTextFile(new URL("testdata/perplexity/kjv.json", ROOT)),
);
const checkpoint = new URL(fixture.checkpoint, ROOT).pathname;
const params = new URL(fixture.params, ROOT).pathname;
const text = new URL(fixture.text, ROOT).pathname;
const dir = await Deno.makeTempDir();

async function exportKjv(name: string, options: Partial<ExportOptions>): Promise<string> {
  const output = `${dir}/${name}.llamane`;
  await exportModel({
    checkpoint,
    params,
    output,
    inputLen: fixture.call_length,
    maxContextLen: fixture.call_length + fixture.cache_length,
    ...options,
  });
  return output;
}

const FP32: Partial<ExportOptions> = {
  dtype: "fp32",
  linearQuantize: "none",
  embeddingQuantize: "none",
};
const fp32 = await exportKjv("fp32", FP32);
const fp16 = await exportKjv("fp16", {});

function permissions(...read: string[]): string[] {
  return [`--allow-read=${[...read, LIBRARY_DIR].join(",")}`, `--allow-ffi=${LIBRARY_DIR}`];
}

async function evalJson(bundle: string, ...args: string[]) {
  const result = await llamane(
    permissions(bundle, text, checkpoint, params, dir),
    "eval",
    "-m",
    bundle,
    "--text",
    text,
    "--max_tokens",
    String(fixture.max_tokens),
    "--json",
    ...args,
  );
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

function assertRelative(actual: number, expected: number, tolerance: number, what: string) {
  const relative = Math.abs(actual - expected) / expected;
  assert.ok(relative <= tolerance, `${what}: ${actual} vs ${expected} (relative ${relative})`);
}

Deno.test("the fixture's tokens are the bundle tokenizer's, and its window changes the perplexity", async () => {
  const tokenizer = await loadTokenizer(`${fp32}/tokenizer.model`);
  const ids = tokenizer.encode(await Deno.readTextFile(text), { bos: true });
  assert.deepEqual(ids.slice(0, fixture.max_tokens), fixture.tokens);
  // Were the window ignored, the figures would be this far apart: far beyond the tolerance.
  assert.ok(fixture.perplexity_without_window / fixture.perplexity > 1.1);
});

Deno.test("llamane eval of an fp32 bundle gives PyTorch's perplexity, its reference too", async () => {
  const report = await evalJson(fp32, "--reference", checkpoint, "-p", params);
  assert.equal(report.tokens, fixture.max_tokens);
  assert.equal(report.positions, fixture.max_tokens - 1);
  assertRelative(report.perplexity, fixture.perplexity, 1e-3, "bundle perplexity");
  assertRelative(report.reference.perplexity, fixture.perplexity, 1e-3, "reference perplexity");
  assert.equal(report.reference.top1Agreement, 1);
  assert.ok(report.reference.meanKlDivergence < 1e-6, `KL ${report.reference.meanKlDivergence}`);
  assert.ok(Math.abs(report.reference.crossEntropyDelta) < 1e-5);
});

Deno.test("llamane eval keeps the first tokens of a model trained beyond the cache", async () => {
  // The KJV model was trained on 256 positions; a params.json saying so (Meta's max_seq_len) lets
  // the cache keep the first tokens for good and attend to them within that reach.
  const trainedParams = `${dir}/params_trained.json`;
  await Deno.writeTextFile(
    trainedParams,
    JSON.stringify({
      ...JSON.parse(await Deno.readTextFile(params)),
      max_seq_len: fixture.trained_context,
    }),
  );
  // The sinks change the figure by more than the tolerance: a test that ignored them would fail.
  assert.ok(Math.abs(fixture.perplexity_with_sinks / fixture.perplexity - 1) > 2e-3);
  const bundle = await exportKjv("sinks", { ...FP32, params: trainedParams });
  const report = await evalJson(bundle, "--reference", checkpoint, "-p", trainedParams);
  assertRelative(report.perplexity, fixture.perplexity_with_sinks, 1e-3, "bundle perplexity");
  assertRelative(report.reference.perplexity, fixture.perplexity_with_sinks, 1e-3, "reference");
  assert.ok(report.reference.meanKlDivergence < 1e-6, `KL ${report.reference.meanKlDivergence}`);
});

Deno.test("llamane eval of a multifunction bundle feeds one token per call to the same figure", async () => {
  // Multifunction caches hold max_context_len - 1 tokens: the same window as the fixture's.
  const multifunction = await exportKjv("multifunction", {
    ...FP32,
    multifunction: true,
    maxContextLen: fixture.cache_length + 1,
  });
  const report = await evalJson(multifunction);
  assert.equal(report.positions, fixture.max_tokens - 1);
  assertRelative(report.perplexity, fixture.perplexity, 1e-3, "multifunction perplexity");
});

Deno.test("llamane eval of a quantized bundle reports what it lost against the reference", async () => {
  const report = await evalJson(fp16, "--reference", checkpoint, "-p", params);
  assertRelative(report.reference.perplexity, fixture.perplexity, 1e-3, "reference perplexity");
  assert.ok(report.reference.top1Agreement < 1 && report.reference.top1Agreement > 0.5);
  assert.ok(report.reference.meanKlDivergence > 1e-4);
  assert.ok(
    Math.abs(
      report.crossEntropy - report.reference.crossEntropy -
        report.reference.crossEntropyDelta,
    ) < 1e-12,
  );
});

Deno.test("llamane eval prints a table, with progress silenced by --quiet", async () => {
  const result = await llamane(
    permissions(fp16, text),
    "eval",
    "-m",
    fp16,
    "--text",
    text,
    "--max_tokens",
    "100",
    "-q",
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /: 100 tokens, 99 predictions scored\n/);
  assert.match(result.stdout, /^ {2}perplexity +\d+\.\d{4}$/m);
  assert.match(result.stdout, /^ {2}cross-entropy, nats +\d+\.\d{4}$/m);
  assert.equal(result.stderr, "");
});

Deno.test("llamane eval refuses texts too short, a reference of another shape, bad flags", async () => {
  const empty = `${dir}/empty.txt`;
  await Deno.writeTextFile(empty, "");
  const short = await llamane(permissions(fp16, empty), "eval", "-m", fp16, "--text", empty);
  assert.equal(short.code, 1);
  assert.match(short.stderr, /the text must have at least 2 tokens/);

  const other = new URL("testdata/oracle/gqa/", ROOT).pathname;
  const mismatch = await llamane(
    permissions(fp16, text, other),
    "eval",
    "-m",
    fp16,
    "--text",
    text,
    "--reference",
    `${other}/consolidated.00.pth`,
    "-p",
    `${other}/params.json`,
  );
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /its shape differs from the bundle's \(vocabSize 1024 \(bundle\)/);

  const missing = await llamane(permissions(fp16), "eval", "-m", fp16);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Missing --text/);
  const one = await llamane(
    permissions(fp16, text),
    "eval",
    "-m",
    fp16,
    "--text",
    text,
    "--max_tokens",
    "1",
  );
  assert.equal(one.code, 2);
  assert.match(one.stderr, /Invalid --max_tokens: expected a whole number >= 2,/);
  const denied = await llamane(permissions(fp16), "eval", "-m", fp16, "--text", text);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /Cannot read the text: permission denied, run with --allow-read=/);
});
