import { doesNotThrow, throws } from "node:assert";
import { sampleModel } from "./_sample_model.ts";
import { MilProgramError } from "./errors.ts";
import type { MilFunction, Operation } from "./mil.ts";
import type { Model } from "./model.ts";
import { validateModel } from "./validate.ts";

/** The sample model with its `main` function replaced by `edit(main)`. */
function withMain(edit: (main: MilFunction) => MilFunction): Model {
  const model = sampleModel();
  const main = model.program.functions.get("main")!;
  return { ...model, program: { functions: new Map([["main", edit(main)]]) } };
}

/** The sample model with the operation named `name` replaced by `edit(op)`. */
function withOp(name: string, edit: (op: Operation) => Operation): Model {
  return withMain((main) => ({
    ...main,
    block: {
      ...main.block,
      operations: main.block.operations.map((op) => op.name === name ? edit(op) : op),
    },
  }));
}

function rejects(model: Model, message: RegExp, operationIndex?: number): void {
  throws(
    () => validateModel(model),
    (e: unknown) =>
      e instanceof MilProgramError && message.test(e.message) &&
      (operationIndex === undefined || e.operationIndex === operationIndex),
  );
}

Deno.test("validateModel() accepts the sample models", () => {
  doesNotThrow(() => validateModel(sampleModel()));
  doesNotThrow(() => validateModel(sampleModel(true)));
});

Deno.test("validateModel() rejects another opset and a low specification version", () => {
  rejects(withMain((main) => ({ ...main, opset: "CoreML7" })), /opset "CoreML7" is unsupported/);
  rejects({ ...sampleModel(), specificationVersion: 8 }, /specification version "8" is below 9/);
});

Deno.test("validateModel() rejects duplicate value names and bindings to later values", () => {
  const main = sampleModel().program.functions.get("main")!;
  const index = main.block.operations.findIndex((op) => op.name === "logits");
  rejects(
    withOp("logits", (op) => ({ ...op, outputs: [{ ...op.outputs[0]!, name: "table" }] })),
    /already defines a value with that name/,
    index,
  );
  rejects(
    withOp("embedded", (op) => ({ ...op, inputs: new Map([...op.inputs, ["x", ["logits"]]]) })),
    /parameter "x" refers to "logits", which is not defined before it/,
  );
  rejects(
    withMain((m) => ({ ...m, block: { ...m.block, outputs: ["nope"] } })),
    /output "nope" is not defined/,
  );
});

Deno.test("validateModel() rejects a const whose output type differs from its value", () => {
  rejects(
    withOp(
      "table",
      (op) => ({ ...op, outputs: [{ name: "table", type: { dtype: "fp16", shape: [32, 16] } }] }),
    ),
    /output "table" is declared fp16\[32, 16\] but its value is fp16\[16, 32\]/,
  );
  rejects(withOp("table", (op) => ({ ...op, attributes: new Map() })), /one attribute "val"/);
});

Deno.test("validateModel() rejects a weight.bin offset that is not 64-byte aligned", () => {
  rejects(
    withOp("table", (op) => {
      const val = op.attributes.get("val")!;
      return {
        ...op,
        attributes: new Map([["val", { ...val, kind: "blob", dtype: "fp16", offsetBytes: 100 }]]),
      };
    }),
    /weight.bin offset "100" is not a positive multiple of 64/,
  );
});

Deno.test("validateModel() rejects a multifunction description that names other functions", () => {
  const model = sampleModel(true);
  const [prefill, decode] = model.description.functions;
  rejects(
    {
      ...model,
      description: { ...model.description, functions: [prefill!, { ...decode!, name: "other" }] },
    },
    /lists functions \[prefill,other\] but the program has/,
  );
  rejects(
    { ...model, description: { ...model.description, defaultFunctionName: "other" } },
    /default function "other" is not one of/,
  );
});
