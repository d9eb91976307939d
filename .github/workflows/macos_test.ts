import assert from "node:assert/strict";
import { parseDocument } from "yaml";

const root = new URL("../../", import.meta.url);
const text = await Deno.readTextFile(new URL(".github/workflows/macos.yml", root));

interface Step {
  readonly name?: string;
  readonly uses?: string;
  readonly run?: string;
}

interface Workflow {
  readonly on: Record<string, unknown>;
  readonly jobs: Record<string, { "runs-on": string; steps: Step[]; env: Record<string, string> }>;
}

function parse(): Workflow {
  // uniqueKeys and strict reject what GitHub would reject or silently misread.
  const document = parseDocument(text, { uniqueKeys: true, strict: true, prettyErrors: true });
  assert.deepEqual(document.errors.map((e) => e.message), []);
  assert.deepEqual(document.warnings.map((e) => e.message), []);
  return document.toJS() as Workflow;
}

function runs(workflow: Workflow): string[] {
  return workflow.jobs.coreml!.steps.map((s) => s.run ?? "").filter((r) => r !== "");
}

Deno.test("macos.yml is valid YAML and runs one macos-15 job on push, pull request and by hand", () => {
  const workflow = parse();
  assert.deepEqual(Object.keys(workflow.on).sort(), ["pull_request", "push", "workflow_dispatch"]);
  assert.deepEqual(Object.keys(workflow.jobs), ["coreml"]);
  assert.equal(workflow.jobs.coreml!["runs-on"], "macos-15");
});

Deno.test("macos.yml pins Xcode 16.4 and installs Deno from npm", () => {
  const workflow = parse();
  const all = runs(workflow).join("\n");
  assert.match(all, /xcode-select --switch \/Applications\/Xcode_16\.4\.app/);
  assert.match(all, /npm install --global "deno@\$\{DENO_VERSION\}"/);
  assert.match(workflow.jobs.coreml!.env.DENO_VERSION!, /^2\.\d+\.\d+$/);
  assert.match(workflow.jobs.coreml!.env.RUST_VERSION!, /^1\.\d+\.\d+$/);
});

Deno.test("macos.yml builds the bridge, exports both bundle kinds, compares both compute units, plans", () => {
  const all = runs(parse());
  assert.ok(all.some((r) => r.includes("ffi/coreml/build.sh")));
  const exports = all.filter((r) => r.includes("cli/main.ts export"));
  assert.equal(exports.length, 2);
  assert.equal(exports.filter((r) => r.includes("--multifunction")).length, 1);
  const comparisons = all.filter((r) => r.includes("compare_backends.ts")).map((r) => {
    const [, bundle] = /compare_backends\.ts (\S+)/.exec(r)!;
    const [, units] = /--compute_units (\S+)/.exec(r)!;
    return `${bundle} ${units}`;
  });
  assert.deepEqual(comparisons.sort(), [
    "out/kjv-multifunction.llamane cpuAndNeuralEngine",
    "out/kjv-multifunction.llamane cpuOnly",
    "out/kjv.llamane cpuAndNeuralEngine",
    "out/kjv.llamane cpuOnly",
  ]);
  assert.ok(all.some((r) => r.includes("inspect --compute-plan out/kjv.llamane")));
});

Deno.test("every repository file macos.yml runs exists", async () => {
  const paths = runs(parse()).join("\n").match(
    /\b(?:ffi|cli|runtime|bundle)\/[\w/.-]+\.(?:ts|sh)\b/g,
  );
  assert.ok(paths !== null && paths.length >= 5);
  for (const path of new Set(paths)) {
    assert.ok((await Deno.stat(new URL(path, root))).isFile, path);
  }
});
