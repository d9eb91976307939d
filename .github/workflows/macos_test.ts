import assert from "node:assert/strict";
import { parseDocument } from "yaml";

const root = new URL("../../", import.meta.url);
const text = await Deno.readTextFile(new URL(".github/workflows/macos.yml", root));

interface Step {
  readonly name?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly if?: string;
  readonly "timeout-minutes"?: number;
}

interface Workflow {
  readonly on: Record<string, unknown>;
  readonly jobs: Record<
    string,
    { "runs-on": string; "timeout-minutes": number; steps: Step[]; env: Record<string, string> }
  >;
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

/** The Core ML steps of the job: comparisons and compute plans, with their compute units. */
function coremlSteps(workflow: Workflow) {
  return workflow.jobs.coreml!.steps.flatMap((step, index) => {
    const run = step.run ?? "";
    if (!run.includes("compare_backends.ts") && !run.includes("--compute_plan")) return [];
    const units = [...run.matchAll(/--compute_units (\S+)/g)].map((m) => m[1]!);
    assert.ok(units.length > 0 && units.every((u) => u === units[0]), run);
    return [{ index, step, run, units: units[0]! }];
  });
}

Deno.test("macos.yml builds the bridge, exports both bundle kinds, compares and plans on each", () => {
  const all = runs(parse());
  assert.ok(all.some((r) => r.includes("ffi/coreml/build.sh")));
  const exports = all.filter((r) => r.includes("cli/main.ts export"));
  assert.equal(exports.length, 2);
  assert.equal(exports.filter((r) => r.includes("--multifunction")).length, 1);
  const comparisons = coremlSteps(parse()).filter((s) => s.run.includes("compare_backends.ts"))
    .map(({ run, units }) => {
      const [, bundle] = /compare_backends\.ts (\S+)/.exec(run)!;
      return `${bundle} ${units}${run.includes("--decline_output_backings") ? " copied" : ""}`;
    });
  assert.deepEqual(comparisons.sort(), [
    "out/kjv-multifunction.llamane cpuAndNeuralEngine",
    "out/kjv-multifunction.llamane cpuOnly",
    "out/kjv-multifunction.llamane cpuOnly copied",
    "out/kjv.llamane cpuAndNeuralEngine",
    "out/kjv.llamane cpuAndNeuralEngine copied",
    "out/kjv.llamane cpuOnly",
    "out/kjv.llamane cpuOnly copied",
  ]);
  const plans = all.filter((r) => r.includes("inspect --compute_plan"));
  for (const units of ["cpuOnly", "cpuAndNeuralEngine"]) {
    assert.ok(plans.some((r) => r.includes(`--compute_units ${units} out/kjv.llamane`)), units);
  }
});

Deno.test("macos.yml runs every cpuOnly step before any Neural Engine step", () => {
  const steps = coremlSteps(parse());
  const lastCpuOnly = Math.max(...steps.filter((s) => s.units === "cpuOnly").map((s) => s.index));
  const firstOther = Math.min(...steps.filter((s) => s.units !== "cpuOnly").map((s) => s.index));
  assert.ok(lastCpuOnly < firstOther, `cpuOnly step ${lastCpuOnly} after step ${firstOther}`);
});

Deno.test("macos.yml bounds every step, and the job above the steps' own bounds", () => {
  const job = parse().jobs.coreml!;
  for (const step of job.steps.filter((s) => s.uses === undefined)) {
    const minutes = step["timeout-minutes"];
    assert.ok(typeof minutes === "number" && minutes > 0 && minutes <= 30, step.name);
  }
  // Core ML steps give the bridge a timeout shorter than the step's, so a stall is reported.
  for (const { step, run } of coremlSteps(parse())) {
    const timeout = /--timeout (\d+)/.exec(run);
    if (timeout !== null) assert.ok(Number(timeout[1]) < step["timeout-minutes"]! * 60, step.name);
  }
  assert.ok(job["timeout-minutes"] >= 60);
});

Deno.test("macos.yml skips Neural Engine steps, visibly, on a virtual machine", () => {
  const steps = parse().jobs.coreml!.steps;
  const detect = steps.findIndex((s) => (s.run ?? "").includes("sysctl -n kern.hv_vmm_present"));
  assert.ok(detect >= 0, "no step detects a virtual machine");
  const run = steps[detect]!.run!;
  assert.match(run, /LLAMANE_ON_VM=\$\{vm\}" >> "\$\{GITHUB_ENV\}"/);
  assert.match(run, /::notice title=Neural Engine steps skipped::/);
  for (const { index, step, units } of coremlSteps(parse())) {
    if (units === "cpuOnly") {
      assert.equal(step.if, undefined, step.name);
    } else {
      assert.ok(index > detect, step.name);
      assert.equal(step.if, "env.LLAMANE_ON_VM != '1'", step.name);
    }
  }
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
