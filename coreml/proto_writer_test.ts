import { deepStrictEqual, notDeepStrictEqual, strictEqual, throws } from "node:assert";
import { sampleModel } from "./_sample_model.ts";
import { MilProgramError } from "./errors.ts";
import type { Model } from "./model.ts";
import { decodeModel } from "./proto_reader.ts";
import { encodeModel } from "./proto_writer.ts";

Deno.test("encodeModel() round-trips every value kind through decodeModel()", () => {
  const model = sampleModel();
  deepStrictEqual(decodeModel(encodeModel(model), "sample.mlmodel"), model);
});

Deno.test("encodeModel() round-trips a multifunction model", () => {
  const model = sampleModel(true);
  const decoded = decodeModel(encodeModel(model), "multi.mlmodel");
  deepStrictEqual(decoded, model);
  deepStrictEqual(decoded.description.functions.map((f) => f.name), ["prefill", "decode"]);
  strictEqual(decoded.description.defaultFunctionName, "decode");
});

Deno.test("encodeModel() is deterministic", () => {
  deepStrictEqual(encodeModel(sampleModel(true)), encodeModel(sampleModel(true)));
  notDeepStrictEqual(encodeModel(sampleModel(true)), encodeModel(sampleModel(false)));
});

Deno.test("encodeModel() writes the 2-byte keys of the format brief for fields 20, 21, 100 and 502", () => {
  // Format brief section 2.0: functions A2 01, defaultFunctionName AA 01, metadata A2 06,
  // mlProgram B2 1F.
  const has = (bytes: Uint8Array, key: number[]) =>
    bytes.some((_, i) => key.every((k, j) => bytes[i + j] === k));
  const multi = encodeModel(sampleModel(true));
  const single = encodeModel(sampleModel(false));
  strictEqual(has(multi, [0xa2, 0x01]) && has(multi, [0xaa, 0x01]), true);
  strictEqual(has(single, [0xa2, 0x06]) && has(single, [0xb2, 0x1f]), true);
});

Deno.test("encodeModel() refuses a model whose description disagrees with its program", () => {
  const model = sampleModel();
  const wrong: Model = {
    ...model,
    description: {
      ...model.description,
      outputs: model.description.outputs.map((o) => ({ ...o, shape: [1] })),
    },
  };
  throws(() => encodeModel(wrong), MilProgramError);
});
