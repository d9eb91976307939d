import assert from "node:assert/strict";
import { CoremlBackend } from "./coreml.ts";
import { packageHash } from "./coreml_cache.ts";
import { LoadedModel } from "../model.ts";
import { ModelSession } from "../session.ts";
import { readManifest } from "../../bundle/manifest.ts";
import { DTYPE_CODES } from "../../ffi/coreml.ts";
import { MissingPermissionError } from "../../permissions.ts";
import { elementCount } from "../../shape.ts";
import { exportTinyBundle } from "../../testing/tiny_bundle.ts";
import { buildFakeLibrary, type FakeTensor } from "../../ffi/coreml/testing/fake_library.ts";

const fake = await buildFakeLibrary();
const bundle = await exportTinyBundle({ inputLen: 4, maxContextLen: 12 });
const manifest = await readManifest(bundle);

function address(view: ArrayBufferView): string {
  return String(Deno.UnsafePointer.value(Deno.UnsafePointer.of(view as BufferSource)));
}

Deno.test("CoremlBackend feeds every piece its manifest inputs and outputs: names, dtypes, shapes, buffers", async () => {
  const cacheDir = await Deno.makeTempDir();
  fake.reset();
  using backend = await CoremlBackend.create({
    library: fake.path,
    cacheDir,
    computeUnits: "cpuOnly",
  });
  using model = await LoadedModel.load(bundle, backend);
  const session = new ModelSession(model);
  await session.step([1, 2]);

  const calls = fake.calls();
  const opens = calls.filter((c) => c.call === "open");
  assert.deepEqual(
    opens.map((c) => [c.package, c.function, c.units, c.compiled]),
    manifest.pieces.map((p) => [`${bundle}/${p.package}`, "", 0, true]),
  );
  for (const [i, piece] of manifest.pieces.entries()) {
    const hash = await packageHash(`${bundle}/${piece.package}`);
    assert.equal(opens[i]!.compiledPath, `${cacheDir}/${hash}.mlmodelc`);
  }

  const predicts = calls.filter((c) => c.call === "predict");
  assert.equal(predicts.length, manifest.pieces.length);
  const describe = (list: readonly { name: string; dtype: string; shape: readonly number[] }[]) =>
    list.map((io) => [io.name, DTYPE_CODES[io.dtype as keyof typeof DTYPE_CODES], io.shape]);
  for (const [i, piece] of manifest.pieces.entries()) {
    const fn = piece.functions[0]!;
    const seen = predicts[i]!;
    const recorded = (list: FakeTensor[]) => list.map((t) => [t.name, t.dtype, t.shape]);
    assert.deepEqual(recorded(seen.inputs as FakeTensor[]), describe(fn.inputs), piece.name);
    assert.deepEqual(recorded(seen.outputs as FakeTensor[]), describe(fn.outputs), piece.name);
  }

  // No copies: the caches are passed in place, and each piece's outputs are the next one's inputs.
  const pointers = (list: FakeTensor[]) => new Map(list.map((t) => [t.name, t.data]));
  type Tensors = { inputs: FakeTensor[]; outputs: FakeTensor[] };
  const [embedding, blocks] = predicts as unknown as [Tensors, Tensors];
  assert.equal(pointers(blocks.inputs).get("k_cache_0"), address(session.cache.keys[0]!));
  assert.equal(
    pointers(blocks.inputs).get("hidden_0"),
    pointers(embedding.outputs).get("hidden_0"),
  );
  // The embedding got the padded call: the first token, 1, in the first int32 slot.
  assert.equal(embedding.inputs[0]!.head, "01000000");
});

Deno.test("CoremlBackend binds every input and output of each call for that call, caches in place", async () => {
  fake.reset();
  using backend = await CoremlBackend.create({
    library: fake.path,
    cacheDir: await Deno.makeTempDir(),
  });
  using model = await LoadedModel.load(bundle, backend);
  const session = new ModelSession(model);
  const binds = () =>
    fake.calls().filter((c) => c.call === "bind").map((c) => c.tensor as FakeTensor);
  await session.step([1, 2]);
  const first = binds();
  const bound = manifest.pieces.flatMap((
    p,
  ) => [...p.functions[0]!.inputs, ...p.functions[0]!.outputs]);
  assert.deepEqual(first.map((t) => t.name), bound.map((io) => io.name));
  fake.reset();
  await session.step([3]);
  const second = binds();
  assert.deepEqual(second.map((t) => t.name), bound.map((io) => io.name));
  // The caches and the outputs are the same arrays from call to call: bound again, not copied.
  const kept = (t: FakeTensor) => !["tokens", "mask", "freqs_cos", "freqs_sin"].includes(t.name);
  assert.deepEqual(second.filter(kept).map((t) => t.data), first.filter(kept).map((t) => t.data));
  const embedding = fake.calls().find((c) => c.call === "predict")!;
  assert.equal((embedding.inputs as FakeTensor[])[0]!.head, "03000000");
});

Deno.test("CoremlBackend reuses a compiled model from the cache", async () => {
  const cacheDir = await Deno.makeTempDir();
  const piece = manifest.pieces[0]!;
  using backend = await CoremlBackend.create({ library: fake.path, cacheDir });
  fake.reset();
  using first = await backend.load(bundle, piece, piece.functions[0]!);
  using second = await backend.load(bundle, piece, piece.functions[0]!);
  assert.deepEqual(fake.calls().filter((c) => c.call === "open").map((c) => c.compiled), [
    true,
    false,
  ]);
  assert.equal(fake.calls()[0]!.units, 3); // cpuAndNeuralEngine by default
  void [first, second];
});

Deno.test("CoremlBackend names the function of multifunction pieces only", async () => {
  using backend = await CoremlBackend.create({
    library: fake.path,
    cacheDir: await Deno.makeTempDir(),
  });
  const piece = manifest.pieces[0]!;
  const main = piece.functions[0]!;
  const prefill = { ...main, name: "prefill" };
  const decode = { ...main, name: "decode", callLength: 1 };
  const multifunction = { ...piece, functions: [decode, prefill] };
  fake.reset();
  using a = await backend.load(bundle, multifunction, prefill);
  using b = await backend.load(bundle, multifunction, decode);
  using c = await backend.load(bundle, piece, main);
  assert.deepEqual(fake.calls().map((call) => call.function), ["prefill", "decode", ""]);
  void [a, b, c];
});

Deno.test("A Core ML function rejects other call lengths and wrong buffers before reaching the bridge", async () => {
  using backend = await CoremlBackend.create({
    library: fake.path,
    cacheDir: await Deno.makeTempDir(),
  });
  const piece = manifest.pieces[0]!;
  const fn = piece.functions[0]!; // embedding: tokens int32 [1, 4] -> hidden_0
  using loaded = await backend.load(bundle, piece, fn);
  const tokens = new Int32Array(4);
  const hidden = new Float16Array(elementCount(fn.outputs[0]!.shape));
  const outputs = new Map([["hidden_0", hidden]]);
  fake.reset();
  await assert.rejects(
    loaded.run(2, new Map([["tokens", tokens]]), outputs),
    /with 2 tokens: its program has a fixed call length of 4; pad the call to 4/,
  );
  await assert.rejects(loaded.run(4, new Map(), outputs), /no input "tokens"/);
  await assert.rejects(
    loaded.run(4, new Map([["tokens", new Float32Array(4)]]), outputs),
    /input "tokens" must be int32 \[1, 4\] \(4 values\), got Float32Array of 4/,
  );
  await assert.rejects(
    loaded.run(4, new Map([["tokens", new Int32Array(3)]]), outputs),
    /got Int32Array of 3/,
  );
  await assert.rejects(
    loaded.run(4, new Map([["tokens", tokens]]), new Map([["hidden_0", new Float16Array(1)]])),
    /output "hidden_0" must be fp16/,
  );
  assert.deepEqual(fake.calls(), []);
  await loaded.run(4, new Map([["tokens", tokens]]), outputs);
  assert.deepEqual(fake.calls().map((c) => c.call), ["bind", "bind", "predict"]);
  assert.deepEqual([...new Set(hidden)], [1]);
});

Deno.test({
  name: "CoremlBackend.create() names the --allow-write flag for the cache directory",
  permissions: { read: true, env: true, ffi: true, write: false },
  async fn() {
    const error = await CoremlBackend.create({ library: fake.path, cacheDir: "/tmp/llamane-cache" })
      .catch((e) => e);
    assert.ok(error instanceof MissingPermissionError, String(error));
    assert.equal(error.flag, "--allow-write=/tmp/llamane-cache");
  },
});

Deno.test({
  name: "CoremlBackend.create() names the --allow-ffi flag for the bridge",
  permissions: { read: true, env: true, ffi: false, write: true },
  async fn() {
    await assert.rejects(
      CoremlBackend.create({ library: fake.path, cacheDir: "/tmp/llamane-cache" }),
      (e) => e instanceof MissingPermissionError && e.flag === `--allow-ffi=${fake.path}`,
    );
  },
});
