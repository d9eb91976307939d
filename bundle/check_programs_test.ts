import assert from "node:assert/strict";
import { exportTinyBundle } from "../testing/tiny_bundle.ts";
import { readCheckedPackages } from "./check_programs.ts";
import { BundleError, type BundleManifest, readManifest } from "./manifest.ts";

const single = await exportTinyBundle({ inputLen: 4, maxContextLen: 16 });
const multi = await exportTinyBundle({ inputLen: 4, maxContextLen: 16, multifunction: true });

// Edits reach anywhere into the parsed JSON, as a tamperer would.
// deno-lint-ignore no-explicit-any
type Edit = (m: { -readonly [K in keyof BundleManifest]: any }) => void;

/** Writes an edited copy of `bundle`'s manifest into the bundle itself, runs, then restores. */
async function withEditedManifest(bundle: string, edit: Edit, fn: () => Promise<void>) {
  const path = `${bundle}/manifest.json`;
  const original = await Deno.readTextFile(path);
  const manifest = JSON.parse(original);
  edit(manifest);
  await Deno.writeTextFile(path, JSON.stringify(manifest));
  try {
    await fn();
  } finally {
    await Deno.writeTextFile(path, original);
  }
}

async function assertRefused(bundle: string, edit: Edit, message: RegExp) {
  await withEditedManifest(bundle, edit, async () => {
    await assert.rejects(
      async () => readCheckedPackages(bundle, await readManifest(bundle)),
      (error: Error) => {
        assert.ok(error instanceof BundleError, `${error.name}: ${error.message}`);
        assert.match(error.message, message);
        return true;
      },
    );
  });
}

function swap<T>(list: T[], a: (x: T) => boolean, b: (x: T) => boolean): void {
  const i = list.findIndex(a), j = list.findIndex(b);
  assert.ok(i >= 0 && j >= 0);
  [list[i], list[j]] = [list[j]!, list[i]!];
}

const named = (name: string) => (io: { name: string }) => io.name === name;
const blocks = (m: Parameters<Edit>[0]) =>
  m.pieces.find((p: { name: string }) => p.name === "blocks");

Deno.test("readCheckedPackages() accepts the bundles the exporter writes", async () => {
  for (const bundle of [single, multi]) {
    const manifest = await readManifest(bundle);
    assert.equal(readCheckedPackages(bundle, manifest).length, manifest.pieces.length);
  }
});

Deno.test("readCheckedPackages() refuses inputs swapped against the program", async () => {
  for (const bundle of [single, multi]) {
    await assertRefused(
      bundle,
      (m) => swap(blocks(m).functions[0].inputs, named("k_cache_0"), named("k_cache_1")),
      /"pieces\[1\]\.functions\[0\]\.inputs\[\d+\]" differs from the program's in name or type/,
    );
    await assertRefused(
      bundle,
      (m) => swap(blocks(m).functions[0].inputs, named("freqs_cos"), named("freqs_sin")),
      /inputs\[\d+\]" differs from the program's in name or type/,
    );
  }
});

Deno.test("readCheckedPackages() refuses a model config the programs do not have", async () => {
  await assertRefused(
    single,
    (m) => m.model.vocabSize -= 1,
    /"pieces\[\d\]\.functions\[0\]\.outputs\[0\]" has a shape the model config does not give it/,
  );
  await assertRefused(single, (m) => m.model.nLayers += 1, /exactly one piece/);
  await assertRefused(
    single,
    (m) => m.export.cacheLen -= 1,
    /shape the model config does not give/,
  );
  await assertRefused(single, (m) => m.pieces[0].weightBytes += 1, /weight.bin holds/);
  await assertRefused(
    single,
    (m) =>
      m.pieces.forEach((p: { functions: { outputs: { name: string }[] }[] }) =>
        p.functions[0]!.outputs.forEach((o) => o.name === "logits" && (o.name = "scores"))
      ),
    /must return "logits" once, or its parts in order covering the vocabulary/,
  );
});

Deno.test("readManifest() refuses a zero RoPE base and other impossible constants", async () => {
  const cases: [Edit, RegExp][] = [
    [(m) => m.model.ropeTheta = 0, /"model.ropeTheta" must be a number greater than 0/],
    [(m) => m.model.normEps = -1, /"model.normEps" must be a number greater than 0/],
    [(m) => m.model.nLayers = 1e9, /"model.nLayers" is 1000000000, more than the 1024/],
    [(m) => m.model.nLayers = "4", /"model.nLayers" must be a positive integer/],
    [(m) => delete m.tokenizer, /"tokenizer" is missing/],
    [(m) => m.model.headDim = null, /"model.headDim" must be a positive integer/],
    [
      (m) => m.pieces[1].functions[0].inputs[0].shape = null,
      /"pieces\[1\]\.functions\[0\]\.inputs\[0\]\.shape" must be a list of 1 to 5 items/,
    ],
    [(m) => m.pieces[0].functions[0].callLength = 1e9, /callLength" must be an integer/],
  ];
  for (const [edit, message] of cases) {
    await withEditedManifest(single, edit, async () => {
      await assert.rejects(() => readManifest(single), message);
    });
  }
});
