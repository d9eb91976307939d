import assert from "node:assert/strict";
import fc from "fast-check";
import { BinaryWriter, WireType } from "./wire.ts";
import { BoundedReader, type Fail } from "./bounded_reader.ts";

class ReadError extends Error {
  constructor(readonly offset: number, detail: string) {
    super(detail);
  }
}

const fail: Fail = (offset, detail) => {
  throw new ReadError(offset, detail);
};

/** Walks `bytes` as one message, reading every length-delimited field as an embedded one. */
function walk(bytes: Uint8Array): void {
  const reader = new BoundedReader(bytes, fail);
  const message = (end: number, name: string): void =>
    reader.fields(end, name, (f) => {
      if (f.wire === WireType.LengthDelimited) {
        reader.message(f, undefined, (e) => message(e, "Inner"));
      } else reader.skip(f);
    });
  message(bytes.length, "Outer");
}

function rejects(read: () => void, offset: number, message: string | RegExp): void {
  assert.throws(read, (error: unknown) => {
    assert.ok(error instanceof ReadError, String(error));
    assert.equal(error.offset, offset);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

Deno.test("BoundedReader reads scalars, strings and packed values inside an embedded message", () => {
  const inner = new BinaryWriter()
    .tag(1, WireType.Varint).int32(-7)
    .tag(2, WireType.Bit32).float(1.5)
    .tag(3, WireType.LengthDelimited).string("héllo")
    .tag(4, WireType.LengthDelimited).fork().int32(1).int32(300).join()
    .tag(5, WireType.Varint).int64(2n ** 40n)
    .finish();
  const bytes = new BinaryWriter().tag(9, WireType.LengthDelimited).bytes(inner).finish();
  const reader = new BoundedReader(bytes, fail);
  const seen: unknown[] = [];
  reader.fields(bytes.length, "Outer", (f) =>
    seen.push(reader.message(f, "Inner", (end) => {
      const values: unknown[] = [];
      reader.fields(end, "Inner", (g) => {
        if (g.no === 1) values.push(reader.int32(g));
        else if (g.no === 2) values.push(reader.float(g));
        else if (g.no === 3) values.push(reader.string(g, "name"));
        else if (g.no === 4) reader.int32s(g, "ints", (v) => values.push(v));
        else values.push(reader.count(g, "size"));
      });
      return values;
    })));
  assert.deepEqual(seen, [[-7, 1.5, "héllo", 1, 300, 2 ** 40]]);
});

Deno.test("BoundedReader tells a truncated file from a field that overruns its message", () => {
  // Field 1 claims 5 bytes of a 4-byte file.
  const truncated = Uint8Array.of(0x0a, 0x05, 0, 0);
  const past = "runs past the end of the file (size 4)";
  rejects(() => walk(truncated), 0, `truncated protobuf: field 1 at offset 0 (length 5) ${past}`);
  // Field 2 is 3 bytes long, but its field 1 claims 2 of the 1 byte left.
  rejects(
    () => walk(Uint8Array.of(0x12, 0x03, 0x0a, 0x02, 0, 0, 0)),
    2,
    "malformed protobuf: field 1 at offset 2 (length 2) runs past the end of its enclosing Inner, which " +
      "ends at offset 5",
  );
});

Deno.test("BoundedReader names a field of the wrong wire type as the caller does", () => {
  const bytes = Uint8Array.of(0x0a, 0x00);
  const read = (what?: string) => {
    const reader = new BoundedReader(bytes, fail);
    reader.fields(bytes.length, "Outer", (f) => reader.int32(f, what));
  };
  const wire = "has wire type length-delimited, expected varint";
  rejects(() => read(), 0, `malformed protobuf: field 1 at offset 0 ${wire}`);
  rejects(
    () => read("count"),
    0,
    `malformed protobuf: field 1 (count) of Outer at offset 0 ${wire}`,
  );
});

Deno.test("BoundedReader rejects malformed keys and varints, and groups", () => {
  rejects(() => walk(Uint8Array.of(0x00)), 0, "malformed field key at offset 0 in Outer");
  rejects(
    () => walk(Uint8Array.of(0x08, ...new Array(10).fill(0xff), 0x01)),
    0,
    "malformed varint in field 1 at offset 0",
  );
  rejects(
    () => walk(Uint8Array.of(0x3b, 0x3c)),
    0,
    /field 7 at offset 0 uses wire type start-group/,
  );
});

Deno.test("BoundedReader fails only through its Fail, whatever the bytes", () => {
  // Short inputs, so that lengths often land inside the bytes and embedded messages get walked.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        walk(bytes);
      } catch (error) {
        assert.ok(error instanceof ReadError, String(error));
      }
    }),
    { numRuns: 2000 },
  );
});
