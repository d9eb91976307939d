import assert from "node:assert/strict";
import {
  ComputePlanCoverageError,
  ComputePlanFormatError,
  computePlanReport,
  parseComputePlan,
  summarizePlacements,
} from "./compute_plan.ts";
import { DEFAULT_TIMEOUT_SECONDS } from "../../ffi/coreml.ts";
import { exportTinyBundle } from "../../testing/tiny_bundle.ts";
import { buildFakeLibrary } from "../../ffi/coreml/testing/fake_library.ts";

const fake = await buildFakeLibrary();

Deno.test("parseComputePlan() reads operator, device, cost and outputs per line", () => {
  const placements = parseComputePlan(
    "const\t\t\tw\nlinear\tane\t0.5\tq,k\nsoftmax\tgpu\t\tattention\nrelu\tdsp\t1e-3\t\n",
  );
  assert.deepEqual(placements, [
    { operator: "const", device: "none", cost: null, outputs: ["w"] },
    { operator: "linear", device: "ane", cost: 0.5, outputs: ["q", "k"] },
    { operator: "softmax", device: "gpu", cost: null, outputs: ["attention"] },
    { operator: "relu", device: "other", cost: 0.001, outputs: [] },
  ]);
  assert.throws(() => parseComputePlan("linear\tane\n"), ComputePlanFormatError);
  assert.throws(() => parseComputePlan("ok\tane\t\tx\nbad line\n"), /line 2 "bad line"/);
});

Deno.test("summarizePlacements() counts and costs per device and lists the ops off the ANE", () => {
  const summary = summarizePlacements(parseComputePlan(
    "const\t\t\tw\nlinear\tane\t0.5\tq\nlinear\tane\t0.25\tk\ngather\tcpu\t0.25\th\n",
  ));
  assert.deepEqual(summary.counts, { ane: 2, gpu: 0, cpu: 1, other: 0, none: 1 });
  assert.deepEqual(summary.cost, { ane: 0.75, gpu: 0, cpu: 0.25, other: 0, none: 0 });
  assert.deepEqual(summary.offNeuralEngine.map((op) => op.outputs[0]), ["h"]);
});

/**
 * The tiny model exported (multifunction or not) into a directory named after `label`: the fake
 * bridge reads "uncovered" in a package path as a plan that covers only the default function.
 */
async function writeBundle(multifunction: boolean, label = "tiny"): Promise<string> {
  const exported = await exportTinyBundle({ multifunction });
  const bundle = `${await Deno.makeTempDir()}/${label}.llamane`;
  await Deno.rename(exported, bundle);
  return bundle;
}

Deno.test("computePlanReport() asks the bridge for every function of every piece", async () => {
  const bundle = await writeBundle(true);
  fake.reset();
  const report = await computePlanReport(bundle, {
    library: fake.path,
    cacheDir: await Deno.makeTempDir(),
    computeUnits: "all",
  });
  assert.equal(report.computeUnits, "all");
  const pieces = ["embedding", "blocks", "head"];
  assert.deepEqual(
    report.functions.map((f) => [f.package, f.function, f.counts.cpu, f.offNeuralEngine.length]),
    pieces.flatMap((
      p,
    ) => [[`${p}.mlpackage`, "prefill", 2, 3], [`${p}.mlpackage`, "decode", 1, 2]]),
  );
  const calls = fake.calls();
  // Multifunction pieces name the function.
  assert.deepEqual(
    calls.map((c) => [c.function, c.units]),
    pieces.flatMap(() => [["prefill", 2], ["decode", 2]]),
  );
  assert.equal(calls[0]!.package, `${bundle}/embedding.mlpackage`);
  assert.equal(calls[0]!.compiledPath, calls[1]!.compiledPath);
  assert.deepEqual(calls.map((c) => c.timeout), calls.map(() => DEFAULT_TIMEOUT_SECONDS));
});

Deno.test("computePlanReport() plans the only function of single-function pieces", async () => {
  const bundle = await writeBundle(false);
  fake.reset();
  const report = await computePlanReport(bundle, {
    library: fake.path,
    cacheDir: await Deno.makeTempDir(),
  });
  assert.deepEqual(report.functions.map((f) => [f.piece, f.function]), [
    ["embedding", "main"],
    ["blocks", "main"],
    ["head", "main"],
  ]);
  assert.deepEqual(fake.calls().map((c) => [c.function, c.units]), [["", 3], ["", 3], ["", 3]]);
});

Deno.test("computePlanReport() refuses a plan that places no operation of the function asked for", async () => {
  const bundle = await writeBundle(true, "uncovered");
  fake.reset();
  const error = await computePlanReport(bundle, {
    library: fake.path,
    cacheDir: await Deno.makeTempDir(),
    timeoutSeconds: 30,
  }).catch((e) => e);
  assert.ok(error instanceof ComputePlanCoverageError, String(error));
  assert.match(
    error.message,
    /function "prefill" of piece "embedding" places none of its operations/,
  );
  assert.deepEqual(fake.calls().map((c) => c.timeout), [30]);
});

Deno.test({
  name: "computePlanReport() off macOS says Core ML is macOS and iOS only (runs off macOS)",
  ignore: Deno.build.os === "darwin",
  async fn() {
    await assert.rejects(
      computePlanReport(await writeBundle(false), { cacheDir: await Deno.makeTempDir() }),
      /Cannot find the Core ML bridge: Core ML exists only on macOS and iOS/,
    );
  },
});
