import assert from "node:assert/strict";
import {
  ComputePlanCoverageError,
  ComputePlanFormatError,
  computePlanReport,
  parseComputePlan,
  summarizePlacements,
} from "./compute_plan.ts";
import { BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION } from "../../bundle/manifest.ts";
import { IO_CONTRACT_VERSION } from "../../bundle/io_names.ts";
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

/** A two-piece bundle; the fake bridge reads `prefix` "uncovered" as a plan of the default function only. */
async function writeBundle(prefix = "bundle"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  const io = (name: string) => ({ name, dtype: "fp16", shape: [1, 4, 8] });
  const fn = (name: string) => ({ name, callLength: 4, inputs: [io("a")], outputs: [io("b")] });
  const pieces = [
    { name: "model", package: "model.mlpackage", functions: [fn("decode"), fn("prefill")] },
    { name: "head", package: "head.mlpackage", functions: [fn("main")] },
  ];
  for (const piece of pieces) {
    await Deno.mkdir(`${dir}/${piece.package}`);
    await Deno.writeTextFile(`${dir}/${piece.package}/Manifest.json`, piece.name);
  }
  await Deno.writeTextFile(
    `${dir}/manifest.json`,
    JSON.stringify({
      format: BUNDLE_FORMAT,
      formatVersion: BUNDLE_FORMAT_VERSION,
      ioContractVersion: IO_CONTRACT_VERSION,
      model: {},
      export: {},
      pieces: pieces.map((p) => ({ ...p, weightBytes: 0 })),
    }),
  );
  return dir;
}

Deno.test("computePlanReport() asks the bridge for every function of every piece", async () => {
  const bundle = await writeBundle();
  fake.reset();
  const report = await computePlanReport(bundle, {
    library: fake.path,
    cacheDir: await Deno.makeTempDir(),
    computeUnits: "all",
  });
  assert.equal(report.computeUnits, "all");
  assert.deepEqual(
    report.functions.map((f) => [f.package, f.function, f.counts.cpu, f.offNeuralEngine.length]),
    [
      ["model.mlpackage", "decode", 1, 2],
      ["model.mlpackage", "prefill", 2, 3],
      ["head.mlpackage", "main", 1, 2],
    ],
  );
  const calls = fake.calls();
  // Multifunction pieces name the function; single-function pieces plan their only one.
  assert.deepEqual(calls.map((c) => [c.function, c.units]), [["decode", 2], ["prefill", 2], [
    "",
    2,
  ]]);
  assert.equal(calls[0]!.package, `${bundle}/model.mlpackage`);
  assert.equal(calls[0]!.compiledPath, calls[1]!.compiledPath);
  assert.deepEqual(calls.map((c) => c.timeout), [600, 600, 600]);
});

Deno.test("computePlanReport() refuses a plan that places no operation of the function asked for", async () => {
  const bundle = await writeBundle("uncovered");
  fake.reset();
  const error = await computePlanReport(bundle, {
    library: fake.path,
    cacheDir: await Deno.makeTempDir(),
    timeoutSeconds: 30,
  }).catch((e) => e);
  assert.ok(error instanceof ComputePlanCoverageError, String(error));
  assert.match(error.message, /function "decode" of piece "model" places none of its operations/);
  assert.deepEqual(fake.calls().map((c) => c.timeout), [30]);
});

Deno.test({
  name: "computePlanReport() off macOS says Core ML is macOS and iOS only (runs off macOS)",
  ignore: Deno.build.os === "darwin",
  async fn() {
    await assert.rejects(
      computePlanReport(await writeBundle(), { cacheDir: await Deno.makeTempDir() }),
      /Cannot find the Core ML bridge: Core ML exists only on macOS and iOS/,
    );
  },
});
