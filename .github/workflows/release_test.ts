import assert from "node:assert/strict";
import { parseDocument } from "yaml";
import { platformName, RELEASED_BUILDS } from "../../ffi/prebuilt.ts";

const root = new URL("../../", import.meta.url);
const text = await Deno.readTextFile(new URL(".github/workflows/release.yml", root));

interface Step {
  readonly name?: string;
  readonly uses?: string;
  readonly if?: string;
  readonly run?: string;
}

interface Job {
  readonly needs?: string;
  readonly permissions?: Record<string, string>;
  readonly strategy?: { matrix: { include: { platform: string; runner: string }[] } };
  readonly steps: Step[];
}

interface Workflow {
  readonly on: Record<string, unknown>;
  readonly permissions: Record<string, string>;
  readonly jobs: Record<string, Job>;
}

function parse(): Workflow {
  // uniqueKeys and strict reject what GitHub would reject or silently misread.
  const document = parseDocument(text, { uniqueKeys: true, strict: true, prettyErrors: true });
  assert.deepEqual(document.errors.map((e) => e.message), []);
  assert.deepEqual(document.warnings.map((e) => e.message), []);
  return document.toJS() as Workflow;
}

/** Index of the first step whose command matches `pattern`. */
function stepIndex(job: Job, pattern: RegExp): number {
  const index = job.steps.findIndex((s) => pattern.test(s.run ?? ""));
  assert.ok(index >= 0, `no step runs ${pattern}`);
  return index;
}

Deno.test("release.yml runs by hand only, with write access only where it releases", () => {
  const workflow = parse();
  assert.deepEqual(Object.keys(workflow.on), ["workflow_dispatch"]);
  assert.deepEqual(workflow.permissions, { contents: "read" });
  assert.equal(workflow.jobs.build!.permissions, undefined);
  assert.deepEqual(workflow.jobs.release!.permissions, { contents: "write", "id-token": "write" });
  assert.equal(workflow.jobs.release!.needs, "build");
});

Deno.test("release.yml builds each platform of RELEASED_BUILDS, the bridge on macOS", () => {
  const build = parse().jobs.build!;
  const platforms = build.strategy!.matrix.include.map((entry) => entry.platform).sort();
  const released = [...new Set(RELEASED_BUILDS.map((b) => platformName(b.os, b.arch)))].sort();
  assert.deepEqual(platforms, released);
  const bridge = build.steps[stepIndex(build, /ffi\/coreml\/build\.sh/)]!;
  const bridgePlatforms = RELEASED_BUILDS.filter((b) => b.library === "llamane_coreml")
    .map((b) => platformName(b.os, b.arch));
  assert.deepEqual(bridgePlatforms, ["macos-arm64"]);
  assert.equal(bridge.if, "matrix.platform == 'macos-arm64'");
});

Deno.test("release.yml names, smoke-tests and uploads the assets of each build", () => {
  const build = parse().jobs.build!;
  const collect = stepIndex(build, /native_assets\.ts collect out\/assets/);
  const demo = stepIndex(build, /LLAMANE_CPU_LIB=.*out\/assets\/.*\n?.*cli\/main\.ts demo/);
  const upload = build.steps.findIndex((s) => s.uses?.startsWith("actions/upload-artifact"));
  assert.ok(stepIndex(build, /deno task build:native/) < collect);
  assert.ok(collect < demo && demo < upload);
});

Deno.test("release.yml records the hashes, then commits and tags, releases, publishes", () => {
  const release = parse().jobs.release!;
  const download = release.steps.findIndex((s) => s.uses?.startsWith("actions/download-artifact"));
  const record = stepIndex(release, /native_assets\.ts record out\/assets/);
  const tag = stepIndex(release, /git add ffi\/native_assets\.json[\s\S]*git tag "v\$\{version\}"/);
  const assets = stepIndex(release, /gh release create "v\$\{VERSION\}" out\/assets\/\*/);
  const publish = stepIndex(release, /^deno publish$/);
  assert.ok(download >= 0 && download < record);
  assert.ok(record < tag && tag < assets && assets < publish);
});

Deno.test("every repository file release.yml runs exists", async () => {
  for (const path of ["scripts/release/native_assets.ts", "ffi/coreml/build.sh", "cli/main.ts"]) {
    assert.ok(text.includes(path), path);
    assert.ok((await Deno.stat(new URL(path, root))).isFile, path);
  }
});
