import assert from "node:assert/strict";
import { type ComputePlanReport, parseComputePlan, summarizePlacements } from "./compute_plan.ts";
import { formatComputePlan } from "./format_compute_plan.ts";

function plan(piece: string, fn: string, text: string) {
  return {
    piece,
    package: `${piece}.mlpackage`,
    function: fn,
    ...summarizePlacements(parseComputePlan(text)),
  };
}

Deno.test("formatComputePlan() prints per function the device split, costs and the ops off the ANE", () => {
  const report: ComputePlanReport = {
    bundle: "kjv.llamane",
    computeUnits: "cpuAndNeuralEngine",
    functions: [
      plan(
        "blocks",
        "decode",
        [
          "const\t\t\tw",
          "linear\tane\t0.6\tq_0",
          "linear\tane\t0.2\tk_0",
          "gather\tcpu\t0.05\tpositions",
          "gather\tcpu\t0.05\thidden_0",
          "softmax\tgpu\t0.1\tattention_0",
        ].join("\n"),
      ),
      plan("head", "main", "const\t\t\tw\nlinear\tane\t\tlogits\n"),
    ],
  };
  assert.equal(
    formatComputePlan(report),
    [
      "Core ML compute plan of kjv.llamane (compute units cpuAndNeuralEngine)",
      "",
      "blocks.mlpackage  function decode",
      "  ops    5 dispatched: Neural Engine 2 (40.0%), GPU 1 (20.0%), CPU 2 (40.0%); 1 not dispatched (constants)",
      "  cost   Neural Engine 80.0%, GPU 10.0%, CPU 10.0% (Core ML's estimates)",
      "  off the Neural Engine (3):",
      "    CPU           gather x2: positions; hidden_0",
      "    GPU           softmax x1: attention_0",
      "",
      "head.mlpackage  function main",
      "  ops    1 dispatched: Neural Engine 1 (100.0%), GPU 0 (0.0%), CPU 0 (0.0%); 1 not dispatched (constants)",
      "  every dispatched operation runs on the Neural Engine",
    ].join("\n"),
  );
});

Deno.test("formatComputePlan() lists at most three outputs per group", () => {
  const text = Array.from({ length: 5 }, (_, i) => `cast\tcpu\t\tx${i}`).join("\n");
  const output = formatComputePlan({
    bundle: "b",
    computeUnits: "all",
    functions: [plan("model", "main", text)],
  });
  assert.match(output, /CPU {11}cast x5: x0; x1; x2 and 2 more$/);
});
