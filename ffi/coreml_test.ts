import assert from "node:assert/strict";
import {
  computePlanText,
  CORE_ML_ABI_VERSION,
  CoremlModel,
  CoremlUnavailableError,
  DEFAULT_TIMEOUT_SECONDS,
  findLibrary,
  openLibrary,
  type OpenOptions,
  type TensorArgument,
} from "./coreml.ts";
import { NativeError } from "./native_library.ts";
import { MissingPermissionError } from "../permissions.ts";
import {
  buildFakeLibrary,
  FAKE_ABI_VERSION,
  type FakeCall,
  type FakeTensor,
} from "./coreml/testing/fake_library.ts";

// Built once for the module: the bindings keep each library open for the process anyway.
const fake = await buildFakeLibrary();

// These tests run with every permission, so they may read addresses to prove that no copy is
// made; the bindings never do (ffi/coreml/testing/scoped_ffi_test.ts runs them without that).
function address(view: ArrayBufferView): string {
  return String(Deno.UnsafePointer.value(Deno.UnsafePointer.of(view as BufferSource)));
}

const bindCalls = () => fake.calls().filter((c) => c.call === "bind");
const predictCalls = () => fake.calls().filter((c) => c.call === "predict");
/** A bind call as [side, index, name, dtype, shape, bytes]. */
const bindSummary = (c: FakeCall) => {
  const t = c.tensor as FakeTensor;
  return [c.side, c.index, t.name, t.dtype, t.shape, t.bytes];
};

async function openFake(packagePath = "/p.mlpackage"): Promise<CoremlModel> {
  const options: OpenOptions = {
    packagePath,
    compiledPath: "/nonexistent-dir/p.mlmodelc",
    functionName: "",
    computeUnits: "cpuAndNeuralEngine",
  };
  return await CoremlModel.open(await openLibrary(fake.path), options);
}

Deno.test("the fake bridge speaks the ABI version the bindings need", () => {
  assert.equal(FAKE_ABI_VERSION, CORE_ML_ABI_VERSION);
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
  // Version 1 built tables of pointers, which a caller with scoped --allow-ffi cannot make.
  await using other = await buildFakeLibrary(1);
  await assert.rejects(
    openLibrary(other.path),
    /implements ABI version 1, this llamane needs 3; build it with `ffi\/coreml\/build.sh`/,
  );
});

Deno.test("CoremlModel passes paths, function and compute units, and binds each buffer in order, without copies", async () => {
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
  const [open, ...rest] = fake.calls();
  assert.deepEqual(open, {
    call: "open",
    package: "/bundle/blocks.mlpackage",
    compiledPath,
    function: "décode",
    units: 0,
    timeout: DEFAULT_TIMEOUT_SECONDS,
    flags: 0,
    compiled: true,
    recompiled: false,
  });
  // One bind call per buffer, inputs then outputs, each at its index; then the prediction.
  assert.deepEqual(rest.map((c) => c.call), ["bind", "bind", "bind", "bind", "predict"]);
  assert.deepEqual(rest.slice(0, 4).map(bindSummary), [
    [0, 0, "tokens", 0x20020, [1, 3], 12],
    [0, 1, "mask", 0x10010, [1, 3, 2], 12],
    [1, 0, "logits", 0x10020, [1, 3, 5], 60],
    [1, 1, "k_new_0", 0x10010, [1, 1, 4, 1], 8],
  ]);
  const predict = rest[4]!;
  const seen = predict.inputs as FakeTensor[];
  assert.deepEqual(seen.map((t) => [t.name, t.dtype, t.shape, t.bytes]), [
    ["tokens", 0x20020, [1, 3], 12],
    ["mask", 0x10010, [1, 3, 2], 12],
  ]);
  assert.equal(seen[0]!.data, address(inputs[0]!.data));
  assert.equal(seen[0]!.head, "04030201"); // little-endian 0x01020304
  assert.equal(seen[1]!.head, "003c003c"); // fp16 1.0
  const outs = predict.outputs as FakeTensor[];
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

Deno.test("CoremlModel binds every buffer for each prediction, and the bridge reads them at predict time", async () => {
  using model = await openFake();
  const tokens = new Int32Array([1, 2]);
  const cache = new Float16Array(4);
  const inputs = (): TensorArgument[] => [
    { name: "tokens", dtype: "int32", shape: [1, 2], data: tokens },
    { name: "k_cache_0", dtype: "fp16", shape: [1, 4], data: cache },
  ];
  const output = (data: Float32Array): TensorArgument[] => [
    { name: "logits", dtype: "fp32", shape: [2], data },
  ];
  const logits = new Float32Array(2);
  await model.predict(inputs(), output(logits));
  fake.reset();
  tokens[0] = 7; // changed in place: the bridge must see the 7, read at predict time
  await model.predict(inputs(), output(logits));
  assert.deepEqual(bindCalls().map(bindSummary), [
    [0, 0, "tokens", 0x20020, [1, 2], 8],
    [0, 1, "k_cache_0", 0x10010, [1, 4], 8],
    [1, 0, "logits", 0x10020, [2], 8],
  ]);
  const [predict] = predictCalls();
  assert.equal((predict!.inputs as FakeTensor[])[0]!.head, "07000000");
  assert.equal((predict!.outputs as FakeTensor[])[0]!.data, address(logits));
  assert.deepEqual([...logits], [1, 1]);
});

Deno.test("CoremlModel refuses fewer buffers than are bound, since the ABI cannot unbind", async () => {
  using model = await openFake();
  const one = (name: string): TensorArgument => ({
    name,
    dtype: "int32",
    shape: [1],
    data: new Int32Array(1),
  });
  await model.predict([one("a"), one("b")], [one("out")]);
  fake.reset();
  await assert.rejects(
    model.predict([one("a")], [one("out")]),
    /Cannot run "\/p.mlpackage" on Core ML: 1 inputs given where 2 are bound/,
  );
  assert.deepEqual(fake.calls(), []);
});

Deno.test("CoremlModel reports a refused binding with the bridge's message and does not predict", async () => {
  using model = await openFake();
  fake.reset();
  const error = await model.predict([
    // 3 values where the shape says 4: the bridge must refuse it before any prediction.
    { name: "tokens", dtype: "int32", shape: [1, 4], data: new Int32Array(3) },
  ], []).catch((e) => e);
  assert.ok(error instanceof NativeError, String(error));
  assert.equal(
    error.message,
    'Cannot bind input "tokens" of "/p.mlpackage" for Core ML: ' +
      "the byte length disagrees with the shape",
  );
  assert.deepEqual(fake.calls(), []);
  // The failed binding left nothing behind: binding at index 0 again works.
  await model.predict(
    [{ name: "tokens", dtype: "int32", shape: [3], data: new Int32Array(3) }],
    [],
  );
  assert.deepEqual(fake.calls().map((c) => c.call), ["bind", "predict"]);
});

Deno.test("CoremlModel turns a failed prediction into a NativeError and keeps serving the handle", async () => {
  using model = await openFake("/bundle/fail-predict.mlpackage");
  const out: TensorArgument[] = [{
    name: "o",
    dtype: "int32",
    shape: [1],
    data: new Int32Array(1),
  }];
  const first = model.predict([], out);
  const second = model.predict([], out);
  await assert.rejects(
    first,
    /^NativeError: Cannot run "\/bundle\/fail-predict.mlpackage" on Core ML: Core ML could not predict: fake failure \u2717$/,
  );
  await assert.rejects(second, /fake failure/);
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
  assert.deepEqual(fake.calls().map((c) => c.call), ["open", "bind", "predict", "close"]);
  assert.equal(fake.calls()[0]!.units, 3);
  assert.deepEqual([...out], [1, 1]);
});

Deno.test("CoremlModel turns the bridge's error message into a NativeError naming the package", async () => {
  const library = await openLibrary(fake.path);
  const error = await CoremlModel.open(library, {
    packagePath: "/bundle/fail-open.mlpackage",
    compiledPath: "/tmp/never.mlmodelc",
    functionName: "",
    computeUnits: "all",
  }).catch((e) => e);
  assert.ok(error instanceof NativeError);
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

Deno.test("CoremlModel passes its timeout and reports the bridge's timeout; bad timeouts are refused", async () => {
  fake.reset();
  const library = await openLibrary(fake.path);
  const open = (timeoutSeconds: number) =>
    CoremlModel.open(library, {
      packagePath: "/bundle/hang-open.mlpackage",
      compiledPath: "/tmp/never.mlmodelc",
      functionName: "",
      computeUnits: "cpuOnly",
      timeoutSeconds,
    });
  await assert.rejects(
    open(42),
    new NativeError(
      'load "/bundle/hang-open.mlpackage" with Core ML',
      "Core ML did not finish (load the model) within 42 s; raise the timeout if the model is large",
    ),
  );
  assert.equal(fake.calls()[0]!.timeout, 42);
  for (const bad of [0, -1, 1.5, NaN, 2 ** 32]) {
    await assert.rejects(open(bad), RangeError);
  }
  assert.equal(fake.calls().length, 1);
});

Deno.test("CoremlModel reports the underlying error Core ML gives under its own", async () => {
  const library = await openLibrary(fake.path);
  const error = await CoremlModel.open(library, {
    packagePath: "/bundle/fail-open-underlying.mlpackage",
    compiledPath: "/tmp/never.mlmodelc",
    functionName: "",
    computeUnits: "cpuAndNeuralEngine",
  }).catch((e) => e);
  assert.ok(error instanceof NativeError);
  assert.match(error.message, /could not be loaded\.; caused by: E5RT: fake program load failure$/);
});

Deno.test("CoremlModel recompiles a cached model Core ML rejects, once", async () => {
  fake.reset();
  const library = await openLibrary(fake.path);
  const cache = await Deno.makeTempDir();
  const options: OpenOptions = {
    packagePath: "/bundle/blocks.mlpackage",
    compiledPath: `${cache}/abc.mlmodelc`,
    functionName: "",
    computeUnits: "cpuOnly",
  };
  (await CoremlModel.open(library, options))[Symbol.dispose]();
  (await CoremlModel.open(library, options))[Symbol.dispose]();
  await Deno.writeFile(`${options.compiledPath}/rejected`, new Uint8Array());
  (await CoremlModel.open(library, options))[Symbol.dispose]();
  const opens = fake.calls().filter((c) => c.call === "open");
  assert.deepEqual(opens.map((c) => [c.compiled, c.recompiled]), [
    [true, false],
    [false, false],
    [true, true],
  ]);
  await assert.rejects(Deno.stat(`${options.compiledPath}/rejected`), Deno.errors.NotFound);
  await Deno.remove(cache, { recursive: true });
});

Deno.test("CoremlModel with declined output backings gets its outputs through the bridge's copy", async () => {
  fake.reset();
  const library = await openLibrary(fake.path);
  using model = await CoremlModel.open(library, {
    packagePath: "/bundle/blocks.mlpackage",
    compiledPath: "/nonexistent-dir/p.mlmodelc",
    functionName: "",
    computeUnits: "cpuOnly",
    declineOutputBackings: true,
  });
  const logits = new Float32Array(2 * 5);
  const keys = new Float16Array(3 * 4);
  await model.predict(
    [{ name: "tokens", dtype: "int32", shape: [1, 2], data: new Int32Array(2) }],
    [
      { name: "logits", dtype: "fp32", shape: [1, 2, 5], data: logits },
      { name: "k_new_0", dtype: "fp16", shape: [1, 3, 4], data: keys },
    ],
  );
  const [open] = fake.calls();
  assert.equal(open!.flags, 1);
  assert.equal(predictCalls()[0]!.copied, true);
  assert.deepEqual([...logits], new Array(10).fill(1));
  assert.deepEqual([...keys], new Array(12).fill(2));
});

Deno.test("CoremlModel refuses an output whose buffer was transferred away, and predicts nothing", async () => {
  fake.reset();
  using model = await openFake();
  const tokens = new Int32Array(2);
  const logits = new Float32Array(4);
  const io = () =>
    model.predict([{ name: "tokens", dtype: "int32", shape: [1, 2], data: tokens }], [
      { name: "logits", dtype: "fp32", shape: [1, 4], data: logits },
    ]);
  await io();
  const moved = logits.buffer.transfer();
  fake.reset();
  await assert.rejects(
    io(),
    /^NativeError: Cannot bind output "logits" of "\/p.mlpackage" for Core ML: its ArrayBuffer was transferred or detached$/,
  );
  assert.deepEqual(fake.calls().map((c) => c.call), ["bind"]);
  assert.deepEqual([...new Float32Array(moved)], [1, 1, 1, 1]);
});
