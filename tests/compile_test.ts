/**
 * What `deno task compile` embeds in the llamane binary: the code the CLI imports, the npm
 * packages that code imports (not the test-only ones the lockfile also holds), the embedded
 * model, which `demo` reads, and the module of the export's quantization workers. Compiling itself needs Deno's denort download; .ci/run compiles
 * where it is reachable, and the macOS workflow always does.
 */

import assert from "node:assert/strict";
import { WORKER_MODULE } from "../export/quantize_pool.ts";
import { REPOSITORY_ROOT } from "../testing/file_server.ts";

const config = JSON.parse(await Deno.readTextFile(`${REPOSITORY_ROOT}/deno.json`));
const compile: string = config.tasks.compile.command;

/** The npm packages reachable from `entry`'s module graph, by name. */
async function npmPackagesImportedBy(entry: string): Promise<string[]> {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: REPOSITORY_ROOT,
  }).output();
  assert.equal(code, 0);
  const { modules } = JSON.parse(new TextDecoder().decode(stdout));
  const packages = modules.filter((m: { kind: string }) => m.kind === "npm")
    .map((m: { npmPackage: string }) => m.npmPackage.replace(/@[^@]+$/, ""));
  return [...new Set<string>(packages)].sort();
}

Deno.test("the compiled binary embeds only the npm packages the CLI imports", async () => {
  // protobuf for SentencePiece models and Core ML files, jinja for chat templates.
  assert.deepEqual(await npmPackagesImportedBy("cli/main.ts"), [
    "@bufbuild/protobuf",
    "@huggingface/jinja",
  ]);
  // Without this flag deno compile embeds every package of the lockfile, tests' ones included.
  assert.match(compile, /^deno compile --exclude-unused-npm /);
  assert.match(compile, / cli\/main\.ts$/);
});

Deno.test("the compiled binary embeds the quantization workers' module", () => {
  const worker = WORKER_MODULE.pathname.slice(
    new URL(`file://${REPOSITORY_ROOT}/`).pathname.length,
  );
  assert.ok(compile.includes(` --include ${worker} `), `${compile} lacks --include ${worker}`);
});

Deno.test("the compiled binary embeds the model its demo exports", () => {
  assert.match(compile, / --include models\/kjv-tiny /);
  assert.match(compile, / --output llamane /);
});
