import assert from "node:assert/strict";
import {
  BackendChoiceError,
  chooseBackend,
  parseBackendRequest,
  parseComputeUnits,
  selectBackend,
} from "./select.ts";
import { CoremlBackend } from "./coreml.ts";
import { CoremlUnavailableError } from "../../ffi/coreml.ts";
import { MissingPermissionError } from "../../permissions.ts";
import { buildFakeLibrary } from "../../ffi/coreml/testing/fake_library.ts";

const fake = await buildFakeLibrary();

Deno.test("parseBackendRequest() takes auto, cpu and coreml only", () => {
  assert.equal(parseBackendRequest("auto"), "auto");
  assert.equal(parseBackendRequest("CoreML"), "coreml");
  assert.throws(() => parseBackendRequest("ane"), BackendChoiceError);
  assert.throws(
    () => parseBackendRequest("gpu"),
    /Invalid --backend: expected auto, cpu, coreml, got "gpu"/,
  );
});

Deno.test("parseComputeUnits() takes Core ML's names and coremltools' spellings", () => {
  assert.equal(parseComputeUnits("cpuAndNeuralEngine"), "cpuAndNeuralEngine");
  assert.equal(parseComputeUnits("CPU_AND_NE"), "cpuAndNeuralEngine");
  assert.equal(parseComputeUnits("cpu-only"), "cpuOnly");
  assert.equal(parseComputeUnits("ALL"), "all");
  assert.equal(parseComputeUnits("cpuAndGPU"), "cpuAndGPU");
  assert.throws(
    () => parseComputeUnits("ane"),
    /Invalid --compute_units: expected cpuOnly, cpuAndGPU, all, cpuAndNeuralEngine, got "ane"/,
  );
});

Deno.test("chooseBackend() auto takes Core ML on macOS when the bridge is present, else the CPU", async () => {
  assert.equal(await chooseBackend({ backend: "auto", os: "linux" }), "cpu");
  assert.equal(await chooseBackend({ os: "windows" }), "cpu");
  assert.equal(await chooseBackend({ os: "darwin", coremlLibrary: fake.path }), "coreml");
  assert.equal(
    await chooseBackend({ os: "darwin", coremlLibrary: "/nonexistent/libllamane_coreml.dylib" }),
    "cpu",
  );
  assert.equal(
    await chooseBackend({ backend: "cpu", os: "darwin", coremlLibrary: fake.path }),
    "cpu",
  );
});

Deno.test("chooseBackend() coreml off macOS fails saying Core ML is macOS and iOS only", async () => {
  const error = await chooseBackend({ backend: "coreml", os: "linux" }).catch((e) => e);
  assert.ok(error instanceof CoremlUnavailableError);
  assert.match(
    error.message,
    /^Cannot use the Core ML backend: Core ML exists only on macOS and iOS, and this is linux; use --backend cpu/,
  );
  assert.equal(await chooseBackend({ backend: "coreml", os: "darwin" }), "coreml");
});

Deno.test("selectBackend() creates the Core ML backend with the compute units asked for", async () => {
  using backend = await selectBackend({
    backend: "coreml",
    computeUnits: "cpuAndGPU",
    coremlLibrary: fake.path,
    coremlCacheDir: await Deno.makeTempDir(),
  });
  assert.ok(backend instanceof CoremlBackend);
  assert.equal(backend.name, "coreml");
  assert.equal(backend.flexibleCallLength, false);
  assert.equal(backend.computeUnits, "cpuAndGPU");
});

Deno.test({
  name: "selectBackend() reports the missing --allow-ffi flag for the chosen bridge",
  permissions: { read: true, write: true, env: true, ffi: false },
  async fn() {
    const error = await selectBackend({ backend: "coreml", coremlLibrary: fake.path }).catch((e) =>
      e
    );
    assert.ok(error instanceof MissingPermissionError, String(error));
    assert.equal(error.flag, `--allow-ffi=${fake.path}`);
  },
});
