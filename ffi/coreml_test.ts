import assert from "node:assert/strict";
import {
  computePlanText,
  CoremlError,
  CoremlModel,
  CoremlUnavailableError,
  DTYPE_CODES,
  findLibrary,
  openLibrary,
  type TensorArgument,
  tensorTable,
} from "./coreml.ts";
import { MissingPermissionError } from "../permissions.ts";
import { buildFakeLibrary, type FakeTensor } from "./coreml/testing/fake_library.ts";

// Built once for the module: the bindings keep each library open for the process anyway.
const fake = await buildFakeLibrary();

function address(view: ArrayBufferView): string {
  return String(Deno.UnsafePointer.value(Deno.UnsafePointer.of(view as BufferSource)));
}

Deno.test("tensorTable() lays out seven 8-byte fields per tensor with MLMultiArray dtype codes", () => {
  const tokens = new Int32Array([5, 6, 7, 8]);
  const mask = new Float16Array(2 * 3);
  const { table, keepAlive } = tensorTable([
    { name: "tokens", dtype: "int32", shape: [1, 4], data: tokens },
    { name: "mask", dtype: "fp16", shape: [1, 2, 3], data: mask },
  ]);
  assert.equal(table.length, 14);
  const [name, shape] = keepAlive as [Uint8Array, BigUint64Array];
  assert.deepEqual(new TextDecoder().decode(name), "tokens");
  assert.deepEqual([...shape], [1n, 4n]);
  assert.deepEqual(
    [...table.subarray(0, 7)].map(String),
    [address(name), "6", address(tokens), "16", address(shape), "2", String(DTYPE_CODES.int32)],
  );
  assert.equal(table[7 + 3], 12n); // six fp16 values
  assert.equal(table[7 + 5], 3n);
  assert.equal(table[7 + 6], 0x10010n);
});

Deno.test("findLibrary() refuses to look for Core ML off macOS, but takes an explicit path", async () => {
  assert.equal(await findLibrary("/somewhere/libbridge.so"), "/somewhere/libbridge.so");
  if (Deno.build.os === "darwin") {
    // On a Mac the search either finds the build or names the build script.
    await findLibrary().catch((e) => assert.match(String(e), /build\.sh/));
  } else {
    await assert.rejects(findLibrary(), CoremlUnavailableError);
    await assert.rejects(findLibrary(), /Core ML exists only on macOS and iOS, and this is/);
  }
});

Deno.test({
  name: "openLibrary() names the --allow-ffi flag for the exact library path",
  permissions: { ffi: false, read: true, env: true },
  async fn() {
    const error = await openLibrary(fake.path).catch((e) => e);
    assert.ok(error instanceof MissingPermissionError, String(error));
    assert.equal(error.flag, `--allow-ffi=${fake.path}`);
    assert.match(error.message, /Cannot load the Core ML bridge: permission denied/);
  },
});

Deno.test("openLibrary() rejects a bridge of another ABI version and says to rebuild it", async () => {
  await using other = await buildFakeLibrary(2);
  await assert.rejects(
    openLibrary(other.path),
    /implements ABI version 2, this llamane needs 1; rebuild it with `ffi\/coreml\/build.sh`/,
  );
});

Deno.test("CoremlModel passes paths, function and compute units, and tensors in order, without copies", async () => {
  fake.reset();
  const library = await openLibrary(fake.path);
  const cache = await Deno.makeTempDir();
  const compiledPath = `${cache}/abc.mlmodelc`;
  using model = await CoremlModel.open(library, {
    packagePath: "/bundle/blocks.mlpackage",
    compiledPath,
    functionName: "décode",
    computeUnits: "cpuOnly",
  });
  // A subarray: the record must point at its first element, not at its buffer's start.
  const backing = new Int32Array([99, 0x01020304, 2, 3]);
  const inputs: TensorArgument[] = [
    { name: "tokens", dtype: "int32", shape: [1, 3], data: backing.subarray(1) },
    { name: "mask", dtype: "fp16", shape: [1, 3, 2], data: new Float16Array(6).fill(1) },
  ];
  const logits = new Float32Array(3 * 5);
  const keys = new Float16Array(4);
  await model.predict(inputs, [
    { name: "logits", dtype: "fp32", shape: [1, 3, 5], data: logits },
    { name: "k_new_0", dtype: "fp16", shape: [1, 1, 4, 1], data: keys },
  ]);
  const [open, predict] = fake.calls();
  assert.deepEqual(open, {
    call: "open",
    package: "/bundle/blocks.mlpackage",
    compiledPath,
    function: "décode",
    units: 0,
    compiled: true,
  });
  const seen = predict!.inputs as FakeTensor[];
  assert.deepEqual(seen.map((t) => [t.name, t.dtype, t.shape, t.bytes]), [
    ["tokens", 0x20020, [1, 3], 12],
    ["mask", 0x10010, [1, 3, 2], 12],
  ]);
  assert.equal(seen[0]!.data, address(inputs[0]!.data));
  assert.equal(seen[0]!.head, "04030201"); // little-endian 0x01020304
  assert.equal(seen[1]!.head, "003c003c"); // fp16 1.0
  const outs = predict!.outputs as FakeTensor[];
  assert.deepEqual(outs.map((t) => [t.name, t.dtype, t.shape, t.bytes]), [
    ["logits", 0x10020, [1, 3, 5], 60],
    ["k_new_0", 0x10010, [1, 1, 4, 1], 8],
  ]);
  // The fake writes i + 1 into output i: the results land in the caller's arrays.
  assert.deepEqual([...new Set(logits)], [1]);
  assert.deepEqual([...new Set(keys)], [2]);
  assert.ok((await Deno.stat(compiledPath)).isDirectory);
  await Deno.remove(cache, { recursive: true });
});

Deno.test("CoremlModel closes its handle on dispose, after queued predictions", async () => {
  fake.reset();
  const library = await openLibrary(fake.path);
  const model = await CoremlModel.open(library, {
    packagePath: "/p.mlpackage",
    compiledPath: "/nonexistent-dir/x.mlmodelc",
    functionName: "",
    computeUnits: "cpuAndNeuralEngine",
  });
  const out = new Int32Array(2);
  const run = model.predict([], [{ name: "o", dtype: "int32", shape: [2], data: out }]);
  model[Symbol.dispose]();
  await run;
  await assert.rejects(model.predict([], []), /the model is closed/);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(fake.calls().map((c) => c.call), ["open", "predict", "close"]);
  assert.equal(fake.calls()[0]!.units, 3);
  assert.deepEqual([...out], [1, 1]);
});

Deno.test("CoremlModel turns the bridge's error message into a CoremlError naming the package", async () => {
  const library = await openLibrary(fake.path);
  const error = await CoremlModel.open(library, {
    packagePath: "/bundle/fail-open.mlpackage",
    compiledPath: "/tmp/never.mlmodelc",
    functionName: "",
    computeUnits: "all",
  }).catch((e) => e);
  assert.ok(error instanceof CoremlError);
  assert.equal(
    error.message,
    'Cannot load "/bundle/fail-open.mlpackage" with Core ML: ' +
      "Core ML could not load the model: fake failure \u2717",
  );
});

Deno.test("computePlanText() retries with the buffer size the bridge asks for", async () => {
  fake.reset();
  const library = await openLibrary(fake.path);
  const options = {
    packagePath: "/p.mlpackage",
    compiledPath: "/nonexistent-dir/p.mlmodelc",
    computeUnits: "cpuAndGPU",
  } as const;
  const small = await computePlanText(library, { ...options, functionName: "decode" });
  assert.equal(small.split("\n")[1], "gather\tcpu\t0.05\thidden_0");
  const huge = await computePlanText(library, { ...options, functionName: "huge" });
  assert.ok(huge.length > 1 << 20);
  assert.ok(huge.startsWith(small));
  const capacities = fake.calls().map((c) => c.capacity);
  assert.deepEqual(capacities, [1 << 20, 1 << 20, huge.length + 1]);
  assert.equal(fake.calls()[0]!.units, 1);
});
