/**
 * Property tests of the manifest reader: whatever JSON a tampered manifest holds, the reader
 * either returns a manifest that keeps every promise the runtime relies on, or throws a
 * BundleError whose message quotes nothing from the file.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { MODEL_LIMITS } from "../llama/limits.ts";
import { exportTinyBundle } from "../testing/tiny_bundle.ts";
import { elementCount } from "../shape.ts";
import {
  BundleError,
  type BundleManifest,
  checkManifest,
  MAX_CALL_LENGTH,
  MAX_IO_ELEMENTS,
  readManifest,
} from "./manifest.ts";

const bundles = [
  await exportTinyBundle({ inputLen: 4, maxContextLen: 16 }),
  await exportTinyBundle({ inputLen: 4, maxContextLen: 16, multifunction: true }),
];
const valid: unknown[] = await Promise.all(
  bundles.map(async (b) => JSON.parse(await Deno.readTextFile(`${b}/manifest.json`))),
);
/** A string no error may echo: it would mean the reader quoted the file. */
const MARKER = "INJECTED\u001b]0;";

/** Every path into `value`, objects and lists included, as key lists. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const found = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => found.push(...paths(v, [...prefix, i])));
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) found.push(...paths(v, [...prefix, k]));
  }
  return found;
}

/** A copy of `value` with the value at `path` replaced (or removed when `replacement` is absent). */
function edited(value: unknown, path: (string | number)[], replacement?: unknown): unknown {
  if (path.length === 0) return replacement;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let parent = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (replacement === undefined) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else parent[last] = replacement;
  return copy;
}

/** What every manifest the reader returns must hold. */
function assertKeepsPromises(manifest: BundleManifest): void {
  for (const [key, limit] of Object.entries(MODEL_LIMITS)) {
    const value = manifest.model[key as keyof typeof MODEL_LIMITS];
    assert.ok(Number.isSafeInteger(value) && value >= 1 && value <= limit, key);
  }
  assert.ok(manifest.model.ropeTheta > 0 && manifest.model.normEps > 0);
  assert.ok(manifest.export.inputLen <= MAX_CALL_LENGTH);
  assert.ok(manifest.export.inputLen < manifest.export.maxContextLen);
  for (const piece of manifest.pieces) {
    assert.match(piece.package, /^[A-Za-z0-9_-]+\.mlpackage$/);
    for (const fn of piece.functions) {
      assert.equal(fn.callLength, fn.name === "decode" ? 1 : manifest.export.inputLen);
      for (const io of [...fn.inputs, ...fn.outputs]) {
        assert.ok(elementCount(io.shape) <= MAX_IO_ELEMENTS);
      }
    }
  }
  if (manifest.tokenizer !== null) {
    assert.match(manifest.tokenizer.file, /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/);
    for (const id of manifest.tokenizer.stopTokens) assert.ok(id < manifest.model.vocabSize);
  }
}

/** Reads `value` as a manifest: a kept promise, or a BundleError that quotes nothing. */
function check(value: unknown): void {
  let manifest: BundleManifest;
  try {
    manifest = checkManifest("b", value);
  } catch (error) {
    assert.ok(error instanceof BundleError, `${(error as Error).name}: ${error}`);
    assert.ok(!error.message.includes("INJECTED"), error.message);
    return;
  }
  assertKeepsPromises(manifest);
}

const hostileValue = fc.oneof(
  fc.jsonValue(),
  fc.constant(MARKER),
  fc.constant(null),
  fc.constantFrom(0, -1, 1e9, 2 ** 53, 0.5, Number.MAX_VALUE, "4", "../secret", "/etc/passwd"),
  fc.dictionary(fc.constant(MARKER), fc.jsonValue()),
);

Deno.test("checkManifest() keeps its promises or refuses, for any value at any field", () => {
  const targets = valid.map((m) => paths(m));
  fc.assert(
    fc.property(
      fc.nat({ max: valid.length - 1 }),
      fc.nat(),
      hostileValue,
      (which, at, replacement) => {
        const path = targets[which]![at % targets[which]!.length]!;
        check(edited(valid[which], path, replacement));
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("checkManifest() keeps its promises or refuses when fields are removed", () => {
  const targets = valid.map((m) => paths(m).filter((p) => p.length > 0));
  fc.assert(
    fc.property(fc.nat({ max: valid.length - 1 }), fc.nat(), (which, at) => {
      check(edited(valid[which], targets[which]![at % targets[which]!.length]!));
    }),
    { numRuns: 500 },
  );
});

Deno.test("checkManifest() refuses arbitrary JSON documents with a BundleError", () => {
  fc.assert(fc.property(fc.jsonValue(), (value) => check(value)), { numRuns: 500 });
});

Deno.test("readManifest() refuses any byte change that breaks the file, quoting none of it", async () => {
  const bundle = bundles[0]!;
  const path = `${bundle}/manifest.json`;
  const original = await Deno.readFile(path);
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat({ max: original.length - 1 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        async (changes) => {
          const bytes = original.slice();
          for (const [at, value] of changes) bytes[at] = value;
          await Deno.writeFile(path, bytes);
          try {
            assertKeepsPromises(await readManifest(bundle));
          } catch (error) {
            assert.ok(error instanceof BundleError, `${(error as Error).name}: ${error}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  } finally {
    await Deno.writeFile(path, original);
  }
});
