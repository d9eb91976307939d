import { deepStrictEqual, ok, strictEqual, throws } from "node:assert";
import { sampleModel } from "./_sample_model.ts";
import { CoremlFormatError } from "./errors.ts";
import { decodeModel } from "./proto_reader.ts";
import { encodeModel } from "./proto_writer.ts";

const PATH = "x/model.mlmodel";

function rejects(bytes: ArrayLike<number>, message: string | RegExp): CoremlFormatError {
  let caught: unknown;
  try {
    decodeModel(Uint8Array.from(bytes), PATH);
  } catch (error) {
    caught = error;
  }
  ok(caught instanceof CoremlFormatError, `expected a CoremlFormatError, got ${caught}`);
  strictEqual(caught.path, PATH);
  if (typeof message === "string") {
    strictEqual(caught.message, `Cannot read model "${PATH}": ${message}`);
  } else ok(message.test(caught.message), caught.message);
  return caught;
}

function indexOf(bytes: Uint8Array, pattern: number[]): number {
  const at = bytes.findIndex((_, i) => pattern.every((p, j) => bytes[i + j] === p));
  ok(at >= 0, `pattern ${pattern} not found`);
  return at;
}

Deno.test("decodeModel() names the field, offset and file size of a truncated message", () => {
  // specificationVersion 9, then field 502 (key B2 1F) claiming 100 bytes of a 5-byte file.
  const error = rejects(
    [0x08, 0x09, 0xb2, 0x1f, 0x64],
    "truncated protobuf: field 502 at offset 2 (length 100) runs past the end of the file (size 5)",
  );
  strictEqual(error.offset, 2);
});

Deno.test("decodeModel() rejects every truncation of a valid model", () => {
  const bytes = encodeModel(sampleModel());
  for (let size = 0; size < bytes.length; size++) {
    throws(() => decodeModel(bytes.subarray(0, size), PATH), CoremlFormatError);
  }
});

Deno.test("decodeModel() rejects a field that runs past its enclosing message", () => {
  // description (field 2) is 3 bytes long, but its field 1 claims 5.
  rejects(
    [0x12, 0x03, 0x0a, 0x05, 0, 0, 0, 0, 0, 0],
    "malformed protobuf: field 1 at offset 2 (length 5) runs past the end of its enclosing " +
      "ModelDescription, which ends at offset 5",
  );
});

Deno.test("decodeModel() rejects malformed varints and keys", () => {
  rejects([0x08, ...new Array(10).fill(0xff), 0x01], /^.*malformed varint in field 1 at offset 0$/);
  rejects([0x00], /malformed field key at offset 0 in Model/);
  rejects(
    [0x08, 0x80],
    /truncated protobuf: field 1 at offset 0 runs past the end of the file \(size 2\)/,
  );
});

Deno.test("decodeModel() rejects a known field with the wrong wire type, and groups", () => {
  rejects(
    [0x0a, 0x00],
    "malformed protobuf: field 1 (specificationVersion) of Model at offset 0 has wire type " +
      "length-delimited, expected varint",
  );
  rejects([0x3b, 0x3c], /field 7 at offset 0 uses wire type start-group/);
});

Deno.test("decodeModel() skips unknown fields of every wire type", () => {
  const model = sampleModel();
  const unknown = [
    [0xf8, 0x07, 0x96, 0x01], // field 127, varint
    [0xf1, 0x07, 1, 2, 3, 4, 5, 6, 7, 8], // field 126, 64-bit
    [0xed, 0x07, 1, 2, 3, 4], // field 125, 32-bit
    [0xe2, 0x07, 0x02, 0xff, 0xfe], // field 124, length-delimited
  ].flat();
  const bytes = Uint8Array.from([...unknown, ...encodeModel(model), ...unknown]);
  deepStrictEqual(decodeModel(bytes, PATH), model);
});

Deno.test("decodeModel() rejects a model without an ML Program", () => {
  rejects([0x08, 0x09], "it is not an ML Program (field 502 `mlProgram` is absent)");
});

Deno.test("decodeModel() rejects invalid UTF-8 in strings", () => {
  // description { defaultFunctionName: FF }
  rejects(
    [0x12, 0x04, 0xaa, 0x01, 0x01, 0xff],
    "defaultFunctionName in ModelDescription at offset 2 is not valid UTF-8",
  );
});

Deno.test("decodeModel() rejects a value stored in the wrong TensorValue member", () => {
  // The fp16 const [1, -0.5, inf] is `bytes` (key 3A); relabel it as `ints` (key 12).
  const bytes = encodeModel(sampleModel());
  const payload = indexOf(bytes, [0x3a, 0x08, 0x0a, 0x06, 0x00, 0x3c, 0x00, 0xb8, 0x00, 0x7c]);
  bytes[payload] = 0x12;
  rejects(bytes, /immediate fp16\[3\] value at offset \d+ is stored as ints, expected bytes/);
});

Deno.test("decodeModel() places a binding to an undefined value at its op's offset", () => {
  // Rename the linear op's binding "add_0" (its last occurrence) to the undefined "add_9".
  const bytes = encodeModel(sampleModel());
  const name = [...new TextEncoder().encode("add_0")];
  let last = -1;
  for (let i = 0; i < bytes.length; i++) if (name.every((c, j) => bytes[i + j] === c)) last = i;
  bytes[last + 4] = "9".charCodeAt(0);
  const error = rejects(
    bytes,
    /invalid program at offset \d+: .*op "logits" \(linear\) of function "main": parameter "x" refers to "add_9", which is not defined before it/,
  );
  ok(error.offset !== undefined && error.offset < last && error.offset > 0);
});

Deno.test("decodeModel() throws only CoremlFormatError on random corruption", () => {
  const valid = encodeModel(sampleModel(true));
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  for (let round = 0; round < 2000; round++) {
    const bytes = valid.slice();
    const flips = 1 + Math.floor(random() * 4);
    for (let i = 0; i < flips; i++) {
      bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    }
    try {
      decodeModel(bytes, PATH);
    } catch (error) {
      if (!(error instanceof CoremlFormatError)) throw error;
    }
  }
});
