/**
 * Spellings the repository keeps to, so that one thing has one name: Core ML is `Coreml` inside
 * identifiers (`CoremlBackend`, `CoremlFormatError`), and a shape's element count is
 * `elementCount` of shape.ts rather than a product written out again.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

async function trackedSources(): Promise<string[]> {
  const { stdout } = await new Deno.Command("git", {
    args: ["ls-files", "*.ts", "*.rs"],
    cwd: ROOT,
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(stdout).split("\n").filter((path) => path !== "");
}

/** Identifiers spelling Core ML otherwise than `Coreml` (opset names such as CoreML8 aside). */
export function otherCoreMlSpellings(source: string): string[] {
  return [...source.matchAll(/\b\w*(?:CoreML(?![0-9]\b)|coreML|CoreMl)\w*\b/g)]
    .map((m) => m[0])
    .filter((word) => word !== "CoreML");
}

/** Shape products written out (`shape.reduce((a, b) => a * b, 1)`) instead of `elementCount`. */
export function inlineElementCounts(source: string): string[] {
  return [...source.matchAll(/\.reduce\(\(\s*(\w+),\s*(\w+)\s*\)\s*=>\s*\1\s*\*\s*\2,\s*1\s*\)/g)]
    .map((m) => m[0]);
}

Deno.test("identifiers spell Core ML one way and count elements with elementCount", async () => {
  const found: string[] = [];
  const self = "tests/conventions_test.ts"; // its examples are the spellings it looks for
  for (const path of (await trackedSources()).filter((path) => path !== self)) {
    const source = await Deno.readTextFile(new URL(path, ROOT));
    for (const word of otherCoreMlSpellings(source)) found.push(`${path}: ${word}`);
    for (const product of inlineElementCounts(source)) found.push(`${path}: ${product}`);
  }
  assert.deepEqual(found, []);
});

Deno.test("the conventions recognise what they forbid and allow what they do not", () => {
  assert.deepEqual(
    otherCoreMlSpellings("class CoreMLFormatError; coreMLCache; CoremlBackend; opset CoreML8"),
    ["CoreMLFormatError", "coreMLCache"],
  );
  assert.deepEqual(
    otherCoreMlSpellings('"com.apple.CoreML/model.mlmodel" CoreML.Specification'),
    [],
  );
  assert.deepEqual(inlineElementCounts("const n = shape.reduce((x, y) => x * y, 1);"), [
    ".reduce((x, y) => x * y, 1)",
  ]);
  assert.deepEqual(inlineElementCounts("xs.reduce((a, b) => a + b, 0)"), []);
});
