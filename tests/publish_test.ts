/**
 * The JSR package holds runtime code, its docs and the embedded model, and nothing that exists
 * to test, measure or build: checked on the file list of `deno publish --dry-run`.
 */

import assert from "node:assert/strict";
import config from "../deno.json" with { type: "json" };
import { REPOSITORY_ROOT } from "../testing/file_server.ts";

/** Repository paths `deno publish --dry-run` would upload. */
async function publishedFiles(): Promise<string[]> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: REPOSITORY_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, output);
  const prefix = `file://${REPOSITORY_ROOT}/`;
  return [...output.matchAll(/^\s+(file:\/\/\S+) \(/gm)].map(([, url]) => {
    const path = decodeURIComponent(url!);
    assert.ok(path.startsWith(prefix), path);
    return path.slice(prefix.length);
  });
}

const files = await publishedFiles();

Deno.test("the package holds the entry points, the docs, the model and the asset hashes", () => {
  const entryPoints = Object.values(config.exports).map((path) => path.replace(/^\.\//, ""));
  for (
    const path of [
      ...entryPoints,
      "deno.json",
      "README.md",
      "LICENSE",
      "docs/design.md",
      "models/embedded.ts",
      "models/kjv-tiny/consolidated.00.pth",
      "models/kjv-tiny/params.json",
      "models/kjv-tiny/tokenizer.model",
      "ffi/native_assets.json",
    ]
  ) assert.ok(files.includes(path), `${path} is not published`);
});

Deno.test("the package holds no tests, fixtures, benchmarks, scripts or native sources", () => {
  const unwanted = files.filter((path) =>
    /(^|\/)(testdata|testing|tests|bench|scripts|examples|\.github|\.ci|target)\//.test(path) ||
    /_test\.ts$|(^|\/)_[^/]*\.ts$|\.(rs|toml|lock|py|sh)$/.test(path) ||
    path.startsWith("ffi/cpu/") || path.startsWith("ffi/coreml/") || path.startsWith(".git") ||
    path === "deno.lock"
  );
  assert.deepEqual(unwanted, []);
});

Deno.test("the package size stated in the README is the dry run's, well under JSR's 20 MB", async () => {
  let bytes = 0;
  for (const path of files) bytes += (await Deno.stat(`${REPOSITORY_ROOT}/${path}`)).size;
  assert.ok(bytes < 12e6, `${bytes} bytes`);
  const readme = await Deno.readTextFile(`${REPOSITORY_ROOT}/README.md`);
  const stated = /The JSR package is about ([\d.]+) MB/.exec(readme);
  assert.ok(stated !== null, "the README states no package size");
  // Code comes and goes; the figure is stale once it is off by more than a rounding step.
  assert.ok(Math.abs(Number(stated[1]) - bytes / 1e6) < 0.5, `${bytes} bytes`);
});
