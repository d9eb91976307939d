// The Core ML backend must run with `--allow-ffi=<bridge path>`, never blanket `--allow-ffi`. A
// child Deno granted only that (plus reading the bundle and writing the compiled-model cache)
// runs a bundle through the bindings on the fake bridge; see scoped_ffi_child.ts.
import assert from "node:assert/strict";
import { buildFakeLibrary, type FakeTensor } from "./fake_library.ts";
import type { ScopedRunReport } from "./scoped_ffi_child.ts";
import { exportTinyBundle } from "../../../testing/tiny_bundle.ts";
import { readManifest } from "../../../bundle/manifest.ts";

const child = decodeURIComponent(new URL("./scoped_ffi_child.ts", import.meta.url).pathname);
const config = decodeURIComponent(new URL("../../../deno.json", import.meta.url).pathname);

async function runChild(flags: string[], args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", `--config=${config}`, ...flags, child, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

Deno.test("the Core ML backend runs a bundle with --allow-ffi=<bridge path> alone, no blanket ffi", async () => {
  await using fake = await buildFakeLibrary();
  const bundle = await exportTinyBundle({ inputLen: 4, maxContextLen: 12 });
  const manifest = await readManifest(bundle);
  const cacheDir = await Deno.makeTempDir();
  const flags = [`--allow-ffi=${fake.path}`, `--allow-read=${bundle}`, `--allow-write=${cacheDir}`];
  const { code, stdout, stderr } = await runChild(flags, [fake.path, bundle, cacheDir]);
  assert.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as ScopedRunReport;

  // The control: this child could not have built a pointer table or read a handle's address.
  assert.equal(report.pointersRefused, true);
  assert.notEqual(report.blanketFfi, "granted");

  const pieces = manifest.pieces.length;
  const calls = report.calls.map((c) => c.call);
  assert.equal(calls.filter((c) => c === "open").length, pieces);
  assert.equal(calls.filter((c) => c === "predict").length, 3 * pieces);
  assert.equal(calls.filter((c) => c === "close").length, pieces);
  assert.equal(calls.filter((c) => c === "compute_plan").length, pieces);
  // Every prediction saw every input and output the manifest lists, bound to real buffers...
  const predicts = report.calls.filter((c) => c.call === "predict");
  for (const [step, predict] of predicts.entries()) {
    const fn = manifest.pieces[step % pieces]!.functions[0]!;
    const names = (list: unknown) => (list as FakeTensor[]).map((t) => t.name);
    assert.deepEqual(names(predict.inputs), fn.inputs.map((io) => io.name));
    assert.deepEqual(names(predict.outputs), fn.outputs.map((io) => io.name));
  }
  // ...whose current contents the bridge read: each step's first token, in the embedding's
  // first int32 slot...
  const heads = predicts.filter((_, i) => i % pieces === 0).map((p) =>
    (p.inputs as FakeTensor[])[0]!.head
  );
  assert.deepEqual(heads, ["01000000", "04000000", "05000000"]);
  // ...and whose outputs it wrote in place: the fake fills output i with i + 1, so the logits
  // row (the head's first output) is all ones.
  assert.deepEqual(report.logits, [[1], [1], [1]]);
  assert.equal(report.planned.length, manifest.pieces.flatMap((p) => p.functions).length);
  assert.ok(report.planned.every((n) => n > 0));
});

Deno.test("the scoped child fails, naming the flag, without ffi permission for the bridge", async () => {
  // Shows the check above is not vacuous: the child really depends on the ffi grant it is given.
  await using fake = await buildFakeLibrary();
  const cacheDir = await Deno.makeTempDir();
  const flags = [`--allow-read=${cacheDir}`, `--allow-write=${cacheDir}`];
  const { code, stderr } = await runChild(flags, [fake.path, cacheDir, cacheDir]);
  assert.notEqual(code, 0);
  assert.match(stderr, new RegExp(`run with --allow-ffi=${fake.path.replaceAll(".", "\\.")}`));
});
